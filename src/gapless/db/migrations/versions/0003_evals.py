"""evaluations: prompts, versions, labels and their moves; scores

Revision ID: 0003_evals
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_evals"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        _fk("prompts", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint("account_id", "name", name="uq_prompts_account_name"),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("prompt_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=40), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        _fk("prompt_versions", "prompt_id", "prompts"),
        sa.PrimaryKeyConstraint("prompt_id", "version", name=op.f("pk_prompt_versions")),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=50), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("moved_by", sa.String(length=40), nullable=True),
        sa.Column("moved_at", Time, nullable=False),
        _fk("prompt_labels", "prompt_id", "prompts"),
        sa.PrimaryKeyConstraint("prompt_id", "label", name=op.f("pk_prompt_labels")),
    )
    op.create_table(
        "prompt_label_moves",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("prompt_id", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=50), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("moved_by", sa.String(length=40), nullable=True),
        sa.Column("moved_at", Time, nullable=False),
        _fk("prompt_label_moves", "prompt_id", "prompts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_label_moves")),
    )
    op.create_index("ix_prompt_label_moves_prompt", "prompt_label_moves", ["prompt_id", "moved_at"])
    op.create_table(
        "scores",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("data_type", sa.String(length=12), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("trace_id", sa.String(length=40), nullable=True),
        sa.Column("observation_id", sa.String(length=100), nullable=True),
        sa.Column("chat_id", sa.String(length=40), nullable=True),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.Column("author", sa.String(length=40), nullable=True),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        _fk("scores", "account_id", "accounts"),
        _fk("scores", "chat_id", "chats"),
        _fk("scores", "message_id", "messages"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
        sa.UniqueConstraint("key", name=op.f("uq_scores_key")),
    )
    op.create_index("ix_scores_account_created", "scores", ["account_id", "created_at"])
    op.create_index("ix_scores_trace", "scores", ["trace_id"])
    op.create_index("ix_scores_chat", "scores", ["chat_id"])


def downgrade() -> None:
    for index in ("ix_scores_chat", "ix_scores_trace", "ix_scores_account_created"):
        op.drop_index(index, table_name="scores")
    op.drop_table("scores")
    op.drop_index("ix_prompt_label_moves_prompt", table_name="prompt_label_moves")
    for table in ("prompt_label_moves", "prompt_labels", "prompt_versions", "prompts"):
        op.drop_table(table)
