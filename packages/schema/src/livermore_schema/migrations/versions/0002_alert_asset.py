"""alert_history.asset and alert_history.quote: the canonical asset of every stored alert.

`asset` is the CoinGecko id of the alert's symbol, else its upper-case base currency (SPEC
section 7); indexed so alert history filters by asset across exchanges. Both are nullable:
rows stored before this revision have neither.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the asset and quote columns and the asset index."""
    op.add_column("alert_history", sa.Column("asset", sa.String(100), nullable=True))
    op.add_column("alert_history", sa.Column("quote", sa.String(20), nullable=True))
    op.create_index("ix_alert_history_asset", "alert_history", ["asset"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_alert_history_asset", table_name="alert_history")
    op.drop_column("alert_history", "quote")
    op.drop_column("alert_history", "asset")
