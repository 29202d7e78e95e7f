"""agents, parts and tool calls (PROTOCOL.md v1.1)

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("tools", sa.Text(), nullable=False),
        sa.Column("approval", sa.Text(), nullable=False),
        sa.Column("step_limit", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_agents_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_index("ix_agents_account", "agents", ["account_id"])
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("agent_id", sa.String(length=40), nullable=True))
        batch.create_foreign_key(
            op.f("fk_chats_agent_id_agents"), "agents", ["agent_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("parts", sa.Text(), nullable=True))
        batch.add_column(sa.Column("agent_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("prompt", sa.Text(), nullable=True))
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("step", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("finish_reason", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("cached_tokens", sa.Integer(), nullable=True))
    op.create_table(
        "tool_calls",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("chat_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decided_at", Time, nullable=True),
        sa.Column("started_at", Time, nullable=True),
        sa.Column("finished_at", Time, nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", Time, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_tool_calls_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "call_id", name=op.f("pk_tool_calls")),
    )
    op.create_index("ix_tool_calls_account_created", "tool_calls", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tool_calls_account_created", table_name="tool_calls")
    op.drop_table("tool_calls")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("cached_tokens")
        batch.drop_column("finish_reason")
        batch.drop_column("step")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("prompt")
        batch.drop_column("user_id")
        batch.drop_column("agent_id")
        batch.drop_column("parts")
    with op.batch_alter_table("chats") as batch:
        batch.drop_constraint(op.f("fk_chats_agent_id_agents"), type_="foreignkey")
        batch.drop_column("agent_id")
    op.drop_index("ix_agents_account", table_name="agents")
    op.drop_table("agents")
