"""Audit hash chain (audit.details, prev_hash, hash) and per-collection face retention.

Existing audit records are chained in id order from the genesis value, with the same hashing the
service uses (keeneye/store/audit_chain.py), so ``keeneye audit verify`` passes right after the
upgrade; the chain proves nothing about what happened to those records before it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 07:50:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from keeneye.store.audit_chain import GENESIS, canonical_record, record_hash
from keeneye.store.tables import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def _chain_existing_records() -> None:
    bind = op.get_bind()
    audit = sa.table(
        "audit",
        sa.column("id", sa.Integer()),
        sa.column("time", UTCDateTime()),
        sa.column("access_key", sa.String()),
        sa.column("operation", sa.String()),
        sa.column("collection_id", sa.String()),
        sa.column("request_faces", sa.Integer()),
        sa.column("matches", sa.JSON()),
        sa.column("threshold", sa.Float()),
        sa.column("flagged_below_99", sa.Boolean()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    prev, last_id = GENESIS, None
    while True:
        stmt = sa.select(audit).order_by(audit.c.id).limit(BATCH)
        if last_id is not None:
            stmt = stmt.where(audit.c.id > last_id)
        rows = bind.execute(stmt).mappings().all()
        if not rows:
            return
        for row in rows:
            record = canonical_record(
                id=row["id"],
                time=row["time"],
                access_key=row["access_key"],
                operation=row["operation"],
                collection_id=row["collection_id"],
                request_faces=row["request_faces"],
                matches=row["matches"],
                threshold=row["threshold"],
                flagged_below_99=row["flagged_below_99"],
                details=None,
                prev_hash=prev,
            )
            digest = record_hash(record)
            bind.execute(sa.update(audit).where(audit.c.id == row["id"]).values(prev_hash=prev, hash=digest))
            prev, last_id = digest, row["id"]


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_records()
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ux_audit_prev_hash", ["prev_hash"], unique=True)
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index("ux_audit_prev_hash")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("details")
