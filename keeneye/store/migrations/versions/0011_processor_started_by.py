"""stream_processors.started_by: the access key that started a processor, so that a server restart
resumes it only while that key may still start it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 21:10:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("stream_processors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("stream_processors", schema=None) as batch_op:
        batch_op.drop_column("started_by")
