"""observability: the prompt version a trace's agent used (name, version), filterable

Revision ID: 0005_observe_prompt
Revises: 0004_observe_indexes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_observe_prompt"
down_revision: str | None = "0004_observe_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("traces") as batch:
        batch.add_column(sa.Column("prompt_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("prompt_version", sa.Integer(), nullable=True))
    op.create_index("ix_traces_prompt_started", "traces", ["prompt_name", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_traces_prompt_started", table_name="traces")
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("prompt_version")
        batch.drop_column("prompt_name")
