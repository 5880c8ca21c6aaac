"""stream_events: the line crossings and zone visits of stream processors, for the console's timeline
(their records go to the processors' sinks; these rows are what the server keeps, under
``retention.stream_events_days``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 23:50:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from keeneye.store.tables import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "stream_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("processor", sa.String(length=255), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("pts_ms", sa.Float(), nullable=True),
        sa.Column("identity", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stream_events_created", "stream_events", ["created_at"])
    op.create_index("ix_stream_events_processor", "stream_events", ["processor", "created_at"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_stream_events_processor", table_name="stream_events")
    op.drop_index("ix_stream_events_created", table_name="stream_events")
    op.drop_table("stream_events")
