"""audit_head: the audit chain's head (records appended, last id and hash) kept in the database too.

Filled from the chain as it is at the upgrade (its record count, newest id and hash), so ``keeneye audit
verify`` passes right after it; what happened to the log's end before the upgrade is not known.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00

"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from keeneye.store.tables import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("problem", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    audit = sa.table("audit", sa.column("id", sa.Integer()), sa.column("hash", sa.String()))
    bind = op.get_bind()
    count = bind.execute(sa.select(sa.func.count()).select_from(audit)).scalar() or 0
    last = bind.execute(sa.select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1)).first()
    if last is not None:
        op.bulk_insert(
            head,
            [
                {
                    "id": 1,
                    "records": int(count),
                    "last_id": int(last[0]),
                    "last_hash": str(last[1]),
                    "updated_at": datetime.now(UTC),
                    "problem": None,
                }
            ],
        )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("audit_head")
