"""upload_holds: a search rule's sink record held until a reviewer confirms its identification (the
collection requires review; deleted with the identification).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 10:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from keeneye.store.tables import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "upload_holds",
        sa.Column("identification_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["identification_id"], ["identifications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("identification_id"),
        sa.UniqueConstraint("event_id"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("upload_holds")
