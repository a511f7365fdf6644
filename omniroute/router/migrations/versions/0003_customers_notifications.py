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
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("consent", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column(
                "acknowledge_pending", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("survey_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("sla_warned_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("sla_breached_at", UTCDateTime(), nullable=True))

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notified_at", UTCDateTime(), nullable=True))

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

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversations_reference"), ["reference"], unique=True)

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
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("notified_at")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_reference"))
        batch_op.drop_column("sla_breached_at")
        batch_op.drop_column("sla_warned_at")
        batch_op.drop_column("survey_pending")
        batch_op.drop_column("acknowledge_pending")
        batch_op.drop_column("reference")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("consent")
        batch_op.drop_column("timezone")
