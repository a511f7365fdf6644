"""conversation aliases

Revision ID: 0005_conversation_aliases
Revises: 0004_merge
Create Date: 2026-11-23 04:22:01.366394
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from omniroute.shared.db import UTCDateTime

revision: str = "0005_conversation_aliases"
down_revision: str | None = "0004_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_aliases",
        sa.Column("alias_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_aliases_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alias_id", name=op.f("pk_conversation_aliases")),
    )
    with op.batch_alter_table("conversation_aliases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_aliases_conversation_id"), ["conversation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_aliases_conversation_id"))

    op.drop_table("conversation_aliases")
