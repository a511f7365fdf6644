"""customers across channels and customer notices

Revision ID: 0003_customers_notifications
Revises: 0001
Create Date: 2026-11-23 04:00:00

Profile, consent and erasure on customers; reference and notice state on conversations;
notified_at on assignments; customer_merges, erasures, notifications and feedback.
"""

import base64
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from omniroute.shared.db import UTCDateTime

revision: str = "0003_customers_notifications"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _reference(conversation_id: uuid.UUID) -> str:
    # A frozen copy of shared.reference.reference_for: migrations must not change with the code.
    code = base64.b32encode(conversation_id.bytes).decode("ascii")[:8]
    return f"{code[:4]}-{code[4:]}"


def upgrade() -> None:
    # Plain ADD COLUMNs with constant defaults, never a batch "move and copy": on SQLite that
    # drops and recreates the table, and with foreign keys on, the DROP cascades to contacts,
    # offers, assignments and events. (sa.false() as a default would make Alembic recreate.)
    op.add_column("customers", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("customers", sa.Column("consent", sa.JSON(), server_default="{}", nullable=False))
    op.add_column("customers", sa.Column("erased_at", UTCDateTime(), nullable=True))

    op.add_column("conversations", sa.Column("reference", sa.String(length=16), nullable=True))
    for flag in ("acknowledge_pending", "survey_pending"):
        # '0' is false to both PostgreSQL's boolean input and SQLite's numeric affinity.
        op.add_column(
            "conversations", sa.Column(flag, sa.Boolean(), server_default="0", nullable=False)
        )
    op.add_column("conversations", sa.Column("sla_warned_at", UTCDateTime(), nullable=True))
    op.add_column("conversations", sa.Column("sla_breached_at", UTCDateTime(), nullable=True))

    op.add_column("assignments", sa.Column("notified_at", UTCDateTime(), nullable=True))

    # Existing conversations get their reference; existing assignments count as notified so
    # the upgrade does not send a burst of stale notices.
    bind = op.get_bind()
    conversations = sa.table("conversations", sa.column("id", sa.Uuid()), sa.column("reference"))
    seen: set[str] = set()
    for (conversation_id,) in bind.execute(sa.select(conversations.c.id)).all():
        reference = _reference(conversation_id)
        if reference in seen:  # a 40-bit collision: that one stays without a reference
            continue
        seen.add(reference)
        bind.execute(
            conversations.update()
            .where(conversations.c.id == conversation_id)
            .values(reference=reference)
        )
    assignments = sa.table(
        "assignments",
        sa.column("started_at", UTCDateTime()),
        sa.column("notified_at", UTCDateTime()),
    )
    bind.execute(assignments.update().values(notified_at=assignments.c.started_at))

    op.create_index(op.f("ix_conversations_reference"), "conversations", ["reference"], unique=True)
    # The notification timer looks for pending work every second: no full scans for it.
    op.create_index(
        op.f("ix_conversations_acknowledge_pending"), "conversations", ["acknowledge_pending"]
    )
    op.create_index(op.f("ix_conversations_survey_pending"), "conversations", ["survey_pending"])
    op.create_index(op.f("ix_assignments_notified_at"), "assignments", ["notified_at"])

    op.create_table(
        "customer_merges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("merged_id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("identities_moved", sa.Integer(), nullable=False),
        sa.Column("conversations_moved", sa.Integer(), nullable=False),
        sa.Column("merged_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_merges")),
    )
    with op.batch_alter_table("customer_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_merges_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_customer_merges_merged_id"), ["merged_id"], unique=False
        )

    op.create_table(
        "erasures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("identities", sa.Integer(), nullable=False),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_erasures_customer_id")),
    )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=600), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_notifications_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_notifications_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_conversation", ["conversation_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notifications_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("queue_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.Column("nps", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_feedback_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_feedback_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_feedback_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queues.id"], name=op.f("fk_feedback_queue_id_queues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("conversation_id", name=op.f("uq_feedback_conversation_id")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_queue_id"), ["queue_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_queue_id"))
        batch_op.drop_index(batch_op.f("ix_feedback_customer_id"))
    op.drop_table("feedback")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_customer_id"))
        batch_op.drop_index("ix_notifications_conversation")
    op.drop_table("notifications")
    op.drop_table("erasures")
    with op.batch_alter_table("customer_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_merges_merged_id"))
        batch_op.drop_index(batch_op.f("ix_customer_merges_customer_id"))
    op.drop_table("customer_merges")
    # Plain DROP COLUMNs (SQLite >= 3.35): a batch recreate would cascade deletes (see upgrade).
    op.drop_index(op.f("ix_assignments_notified_at"), table_name="assignments")
    op.drop_column("assignments", "notified_at")
    for index in ("survey_pending", "acknowledge_pending", "reference"):
        op.drop_index(op.f(f"ix_conversations_{index}"), table_name="conversations")
    for column in (
        "sla_breached_at",
        "sla_warned_at",
        "survey_pending",
        "acknowledge_pending",
        "reference",
    ):
        op.drop_column("conversations", column)
    for column in ("erased_at", "consent", "timezone"):
        op.drop_column("customers", column)
