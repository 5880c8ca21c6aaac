"""Leases: several servers on one database claim each stored-video job and each stream processor once.

video_jobs.lease_owner / lease_expires_at: the server (worker) running a job and until when its claim
holds (renewed while it runs); stream_processors.lease_owner / lease_expires_at: the same for the server
that runs a processor's worker. An expired lease is the owner's death: another server takes the work over.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:50:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from keeneye.store.tables import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("video_jobs", "stream_processors")


def upgrade() -> None:
    """Upgrade schema."""
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column("lease_expires_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("lease_expires_at")
            batch_op.drop_column("lease_owner")
