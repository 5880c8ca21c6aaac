"""request_tokens: idempotent replay of ClientRequestToken for the user operations.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 18:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "request_tokens",
        sa.Column("access_key", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("access_key", "region", "operation", "token"),
    )
    with op.batch_alter_table("request_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_request_tokens_created", ["created_at"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("request_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_request_tokens_created")
    op.drop_table("request_tokens")
