"""merge webhooks and customers

Revision ID: 0004_merge
Revises: 0002_webhooks, 0003_customers_notifications
Create Date: 2026-11-23 04:19:53.305734
"""

from collections.abc import Sequence

revision: str = "0004_merge"
down_revision: str | Sequence[str] | None = ("0002_webhooks", "0003_customers_notifications")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
