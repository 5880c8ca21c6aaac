"""Analysis on upload: upload_rules (bucket -> task) and upload_events (one row per object version).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 08:40:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "upload_rules",
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    op.create_table(
        "upload_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.String(length=1024), nullable=False),
        sa.Column("key", sa.String(length=2048), nullable=False),
        sa.Column("version", sa.String(length=1024), nullable=False),
        sa.Column("sequencer", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("event_name", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("access_key", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1024), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("upload_events", schema=None) as batch_op:
        batch_op.create_index("ix_upload_events_due", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("upload_events", schema=None) as batch_op:
        batch_op.drop_index("ix_upload_events_due")
    op.drop_table("upload_events")
    op.drop_table("upload_rules")
