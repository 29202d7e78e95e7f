"""observability: traces, observations, hourly usage roll-ups, chat usage

Revision ID: 0003_observe
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_observe"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.DateTime(timezone=True)
BUCKETS = 56


def _counts(*names: str, kind: type[sa.types.TypeEngine[int]] = sa.Integer) -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, kind(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("reply_id", sa.String(length=40), nullable=False),
        sa.Column("chat_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("agent_id", sa.String(length=40), nullable=True),
        sa.Column("agent_name", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("ended_at", Time, nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        *_counts("steps", "generations", "tools"),
        *_counts("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens"),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traces")),
    )
    op.create_index("ix_traces_account_started", "traces", ["account_id", "started_at"])
    op.create_index("ix_traces_started", "traces", ["started_at"])
    op.create_index("ix_traces_chat_started", "traces", ["chat_id", "started_at"])
    op.create_table(
        "observations",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("trace_id", sa.String(length=40), nullable=False),
        sa.Column("parent_id", sa.String(length=100), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("ended_at", Time, nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("provider", sa.String(length=100), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("finish_reason", sa.String(length=40), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=True),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    op.create_index("ix_observations_trace", "observations", ["trace_id"])
    op.create_index("ix_observations_kind_started", "observations", ["kind", "started_at"])
    op.create_table(
        "usage_hourly",
        sa.Column("dim", sa.String(length=10), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        *_counts("count", "errors"),
        *_counts(
            "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", kind=sa.BigInteger
        ),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("ttft_count", sa.Integer(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=False),
        *_counts(*[f"d{i}" for i in range(BUCKETS)]),
        *_counts(*[f"t{i}" for i in range(BUCKETS)]),
        sa.PrimaryKeyConstraint("dim", "hour", "account_id", "key", name=op.f("pk_usage_hourly")),
    )
    op.create_table(
        "chat_usage",
        sa.Column("chat_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        *_counts("traces", "generations", "tools"),
        *_counts("input_tokens", "output_tokens", kind=sa.BigInteger),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("last_at", Time, nullable=True),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chat_usage")),
    )


def downgrade() -> None:
    op.drop_table("chat_usage")
    op.drop_table("usage_hourly")
    op.drop_index("ix_observations_kind_started", table_name="observations")
    op.drop_index("ix_observations_trace", table_name="observations")
    op.drop_table("observations")
    op.drop_index("ix_traces_chat_started", table_name="traces")
    op.drop_index("ix_traces_started", table_name="traces")
    op.drop_index("ix_traces_account_started", table_name="traces")
    op.drop_table("traces")
