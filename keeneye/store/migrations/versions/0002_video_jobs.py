"""Stored-video jobs: video_jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 06:05:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "video_jobs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.String(length=1024), nullable=True),
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("version", sa.String(length=1024), nullable=True),
        sa.Column("job_tag", sa.String(length=256), nullable=True),
        sa.Column("client_request_token", sa.String(length=64), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("video_metadata", sa.JSON(), nullable=True),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("video_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_video_jobs_status", ["status"], unique=False)
        batch_op.create_index("ix_video_jobs_token", ["kind", "client_request_token"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("video_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_video_jobs_token")
        batch_op.drop_index("ix_video_jobs_status")
    op.drop_table("video_jobs")
