"""The human review queue: identifications (each match waiting for a person's decision, with its face
crop), review_negatives (rejected probes kept against the person they wrongly matched) and
collections.review_required.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 23:45:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from keeneye.store.tables import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("review_required", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "identifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("source_kind", sa.String(length=16), nullable=False),
        sa.Column("source_name", sa.String(length=2048), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("collection_id", sa.String(length=255), nullable=True),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("face_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("pts_ms", sa.Integer(), nullable=True),
        sa.Column("crop", sa.LargeBinary(), nullable=True),
        sa.Column("probe_embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedder_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.collection_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identifications", schema=None) as batch_op:
        batch_op.create_index("ix_identifications_created", ["created_at"], unique=False)
        batch_op.create_index("ix_identifications_status", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_identifications_collection", ["collection_id", "created_at"], unique=False)
        batch_op.create_index("ix_identifications_track", ["session_id", "track_id"], unique=False)
    op.create_table(
        "review_negatives",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("collection_id", sa.String(length=255), nullable=False),
        sa.Column("face_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("embedder_id", sa.String(length=128), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("identification_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.collection_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_negatives", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_negatives_collection", ["collection_id", "face_id", "user_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("review_negatives", schema=None) as batch_op:
        batch_op.drop_index("ix_review_negatives_collection")
    op.drop_table("review_negatives")
    with op.batch_alter_table("identifications", schema=None) as batch_op:
        batch_op.drop_index("ix_identifications_track")
        batch_op.drop_index("ix_identifications_collection")
        batch_op.drop_index("ix_identifications_status")
        batch_op.drop_index("ix_identifications_created")
    op.drop_table("identifications")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("review_required")
