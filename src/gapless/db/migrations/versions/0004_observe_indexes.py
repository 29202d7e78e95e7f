"""observability: trace list indexes per filter (status, model, agent, user), newest first

Revision ID: 0004_observe_indexes
Revises: 0003_observe
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_observe_indexes"
down_revision: str | None = "0003_observe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_traces_status_started": ["status", "started_at"],
    "ix_traces_model_started": ["model", "started_at"],
    "ix_traces_agent_started": ["agent_id", "started_at"],
    "ix_traces_user_started": ["user_id", "started_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "traces", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="traces")
