"""evaluations: datasets and their items, evaluators, experiments and their items; chats
that an experiment's item runs in

Revision ID: 0005_experiments
Revises: 0004_review_queues
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_experiments"
down_revision: str | None = "0004_review_queues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.DateTime(timezone=True)
Id = sa.String(length=40)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.add_column("chats", sa.Column("experiment_id", Id, nullable=True))
    op.create_table(
        "datasets",
        sa.Column("id", Id, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("baseline_id", Id, nullable=True),
        sa.Column("created_by", Id, nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        _fk("datasets", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("account_id", "name", name="uq_datasets_account_name"),
    )
    op.create_table(
        "dataset_items",
        sa.Column("id", Id, nullable=False),
        sa.Column("dataset_id", Id, nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("expected", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("source_reply_id", Id, nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        _fk("dataset_items", "dataset_id", "datasets"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_items")),
    )
    op.create_index(
        "ix_dataset_items_dataset", "dataset_items", ["dataset_id", "status", "created_at"]
    )
    op.create_table(
        "evaluators",
        sa.Column("id", Id, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("sample", sa.Float(), nullable=False),
        sa.Column("filter", sa.Text(), nullable=False),
        sa.Column("created_by", Id, nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        _fk("evaluators", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluators")),
        sa.UniqueConstraint("account_id", "name", name="uq_evaluators_account_name"),
    )
    op.create_table(
        "experiments",
        sa.Column("id", Id, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("dataset_id", Id, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("evaluators", sa.Text(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("created_by", Id, nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("started_at", Time, nullable=True),
        sa.Column("ended_at", Time, nullable=True),
        _fk("experiments", "account_id", "accounts"),
        _fk("experiments", "dataset_id", "datasets"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index("ix_experiments_dataset", "experiments", ["dataset_id", "created_at"])
    op.create_index("ix_experiments_status", "experiments", ["status"])
    op.create_table(
        "experiment_items",
        sa.Column("id", Id, nullable=False),
        sa.Column("experiment_id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("chat_id", Id, nullable=True),
        sa.Column("reply_id", Id, nullable=True),
        sa.Column("trace_id", Id, nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("scores", sa.Text(), nullable=True),
        sa.Column("claimed_at", Time, nullable=True),
        sa.Column("started_at", Time, nullable=True),
        sa.Column("ended_at", Time, nullable=True),
        _fk("experiment_items", "experiment_id", "experiments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_items")),
        sa.UniqueConstraint("experiment_id", "item_id", name="uq_experiment_items_item"),
    )
    op.create_index(
        "ix_experiment_items_status",
        "experiment_items",
        ["experiment_id", "status", "position"],
    )
    op.create_index("ix_experiment_items_reply", "experiment_items", ["reply_id"])


def downgrade() -> None:
    op.drop_index("ix_experiment_items_reply", table_name="experiment_items")
    op.drop_index("ix_experiment_items_status", table_name="experiment_items")
    op.drop_table("experiment_items")
    op.drop_index("ix_experiments_status", table_name="experiments")
    op.drop_index("ix_experiments_dataset", table_name="experiments")
    op.drop_table("experiments")
    op.drop_table("evaluators")
    op.drop_index("ix_dataset_items_dataset", table_name="dataset_items")
    op.drop_table("dataset_items")
    op.drop_table("datasets")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("experiment_id")
