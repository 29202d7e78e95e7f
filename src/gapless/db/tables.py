"""The schema, as SQLAlchemy Core tables (migrations in `migrations/` follow it).

Imports nothing from gapless. Times are timezone-aware UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Time = sa.DateTime(timezone=True)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(400)),
    sa.Column("site_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", Time, nullable=False),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False, default="member"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(20), nullable=False),  # "api" or "session"
    sa.Column("csrf", sa.String(64)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time),
)

chats = sa.Table(
    "chats",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("system_prompt", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("agent_id", sa.ForeignKey("agents.id", ondelete="SET NULL")),
    # An experiment's item runs in a chat of its own, left out of the chat list.
    sa.Column("experiment_id", sa.String(40)),
    sa.Index("ix_chats_account_updated", "account_id", "updated_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("chat_id", sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    sa.Column("parent_id", sa.ForeignKey("messages.id", ondelete="CASCADE")),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("thinking", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("model", sa.String(200)),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("reasoning_tokens", sa.Integer),
    # The log cursor of the last event this row reflects, while the reply is unfinished:
    # a chat's state is served with the oldest of these, so the replay covers the lag.
    sa.Column("position", sa.String(300)),
    # The run that may write this row (a fencing token); other runs' writes are refused.
    sa.Column("lease", sa.String(64)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    # The reply's parts as JSON (PROTOCOL.md v1.1), written with its text; NULL while they
    # are only [thinking?, text?] and so follow from `thinking` and `content`.
    sa.Column("parts", sa.Text),
    sa.Column("agent_id", sa.String(40)),  # the agent a reply ran (kept if it is deleted)
    sa.Column("prompt", sa.Text),  # JSON {name, version}: the prompt version its agent used
    sa.Column("user_id", sa.String(40)),  # who wrote the message, or asked for the reply
    sa.Index("ix_messages_chat_created", "chat_id", "created_at"),
    sa.Index("ix_messages_status", "status"),
)

generations = sa.Table(
    "generations",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("message_id", sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    sa.Column("chat_id", sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("first_token_at", Time),
    sa.Column("finished_at", Time),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("reasoning_tokens", sa.Integer),
    sa.Column("cost", sa.Float),
    sa.Column("deltas", sa.Integer, nullable=False, default=0),
    sa.Column("flushes", sa.Integer, nullable=False, default=0),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("step", sa.Integer),  # the agent step (1, 2, ...) this model call was
    sa.Column("finish_reason", sa.String(40)),
    sa.Column("cached_tokens", sa.Integer),
    sa.Index("ix_generations_account_started", "account_id", "started_at"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("instructions", sa.Text, nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("temperature", sa.Float),
    sa.Column("max_tokens", sa.Integer),
    sa.Column("tools", sa.Text, nullable=False),  # JSON list of tool names
    sa.Column("approval", sa.Text, nullable=False),  # JSON {tool name: "never" | "always"}
    sa.Column("step_limit", sa.Integer, nullable=False),
    # JSON {name, label | version, variables?}: instructions from a prompt (else its own)
    sa.Column("prompt", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_agents_account", "account_id"),
)

# One row per tool call of a reply: its start is recorded before it runs, so a retried job
# never runs a call twice; an approval decision is recorded here before the run goes on.
tool_calls = sa.Table(
    "tool_calls",
    metadata,
    sa.Column("message_id", sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("call_id", sa.String(200), primary_key=True),
    sa.Column("chat_id", sa.String(40), nullable=False),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("arguments", sa.Text, nullable=False),
    # awaiting_approval | running | complete | failed | denied | cancelled
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("decision", sa.String(10)),  # approve | deny
    sa.Column("reason", sa.Text),
    sa.Column("decided_by", sa.String(40)),
    sa.Column("decided_at", Time),
    sa.Column("started_at", Time),
    sa.Column("finished_at", Time),
    sa.Column("output", sa.Text),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_tool_calls_account_created", "account_id", "created_at"),
)

# ---- observability ----
# One trace per reply's run (observe/recorder.py), a tree of observations, and roll-ups that
# outlive both (retention deletes traces and their content, never the roll-ups).

HISTOGRAM_BUCKETS = 56  # observe.histogram.BUCKETS (a test keeps the two equal)

traces = sa.Table(
    "traces",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("reply_id", sa.String(40), nullable=False),
    sa.Column("chat_id", sa.String(40), nullable=False),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(40)),
    sa.Column("agent_id", sa.String(40)),
    sa.Column("agent_name", sa.String(200)),
    sa.Column("model", sa.String(200)),
    # running | requires_action | complete | failed | cancelled | interrupted
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("ended_at", Time),
    sa.Column("duration_ms", sa.Float),
    sa.Column("ttft_ms", sa.Float),  # the first model call's time to first chunk
    sa.Column("steps", sa.Integer, nullable=False, default=0),
    sa.Column("generations", sa.Integer, nullable=False, default=0),
    sa.Column("tools", sa.Integer, nullable=False, default=0),
    sa.Column("input_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("output_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cached_tokens", sa.Integer, nullable=False, default=0),
    sa.Column("cost", sa.Float, nullable=False, default=0.0),
    sa.Column("input", sa.Text),  # the question (content capture on), for search and lists
    sa.Column("output", sa.Text),  # the answer's text, likewise
    sa.Column("prompt_name", sa.String(200)),  # the prompt the agent's instructions came from
    sa.Column("prompt_version", sa.Integer),
    sa.Index("ix_traces_account_started", "account_id", "started_at"),
    sa.Index("ix_traces_started", "started_at"),
    sa.Index("ix_traces_chat_started", "chat_id", "started_at"),
    # A filtered list reads its filter's entries newest first (migration 0004_observe_indexes).
    sa.Index("ix_traces_status_started", "status", "started_at"),
    sa.Index("ix_traces_model_started", "model", "started_at"),
    sa.Index("ix_traces_agent_started", "agent_id", "started_at"),
    sa.Index("ix_traces_user_started", "user_id", "started_at"),
    sa.Index("ix_traces_prompt_started", "prompt_name", "started_at"),  # 0005_observe_prompt
)

observations = sa.Table(
    "observations",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("trace_id", sa.String(40), nullable=False),
    sa.Column("parent_id", sa.String(100)),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # generation | tool | span
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("ended_at", Time),
    sa.Column("duration_ms", sa.Float),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("provider", sa.String(100)),
    sa.Column("model", sa.String(200)),
    sa.Column("step", sa.Integer),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("reasoning_tokens", sa.Integer),
    sa.Column("cached_tokens", sa.Integer),
    sa.Column("cost", sa.Float),
    sa.Column("finish_reason", sa.String(40)),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("attributes", sa.Text),  # JSON: settings, call_id, tool_calls, ... by kind
    sa.Column("input", sa.Text),  # JSON: messages or arguments (content capture on)
    sa.Column("output", sa.Text),
    sa.Index("ix_observations_trace", "trace_id"),
    sa.Index("ix_observations_kind_started", "kind", "started_at"),
)

# Model calls per hour (epoch hours), per account and per one dimension (`dim`: all, model,
# agent, user; `key` its value): sums, and histograms of duration (d*) and TTFT (t*).
usage_hourly = sa.Table(
    "usage_hourly",
    metadata,
    sa.Column("dim", sa.String(10), primary_key=True),
    sa.Column("hour", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("ttft_count", sa.Integer, nullable=False),
    sa.Column("ttft_ms", sa.Float, nullable=False),
    *[sa.Column(f"d{i}", sa.Integer, nullable=False) for i in range(HISTOGRAM_BUCKETS)],
    *[sa.Column(f"t{i}", sa.Integer, nullable=False) for i in range(HISTOGRAM_BUCKETS)],
)

# Each chat's totals over every run it had (kept when its traces expire).
chat_usage = sa.Table(
    "chat_usage",
    metadata,
    sa.Column("chat_id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("traces", sa.Integer, nullable=False),
    sa.Column("generations", sa.Integer, nullable=False),
    sa.Column("tools", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("last_at", Time),
)

# ---- security (migration 0003_security) ----
# A token's name (API tokens; a session's is its browser's User-Agent), when it was last
# used (written at most once a minute). Token kinds:
# "api", "session", "invite" (a link that sets a first password).
tokens.append_column(sa.Column("name", sa.String(200)))
tokens.append_column(sa.Column("last_used_at", Time))

# ---- evaluations ----
# Prompts (named per account), their versions (never changed once saved), labels pointing at a
# version (`latest` moved automatically), every move of a label, and scores: numeric, boolean
# or categorical, on a trace, an observation, a chat or a reply (thumbs are a reply's score).

prompts = sa.Table(
    "prompts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("account_id", "name", name="uq_prompts_account_name"),
)

prompt_versions = sa.Table(
    "prompt_versions",
    metadata,
    sa.Column("prompt_id", sa.ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # JSON {model, temperature, max_tokens}
    sa.Column("message", sa.Text, nullable=False),  # the commit message
    sa.Column("author", sa.String(40)),
    sa.Column("created_at", Time, nullable=False),
)

prompt_labels = sa.Table(
    "prompt_labels",
    metadata,
    sa.Column("prompt_id", sa.ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("label", sa.String(50), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("moved_by", sa.String(40)),
    sa.Column("moved_at", Time, nullable=False),
)

prompt_label_moves = sa.Table(
    "prompt_label_moves",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("prompt_id", sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("label", sa.String(50), nullable=False),
    sa.Column("from_version", sa.Integer),  # NULL: the label is new
    sa.Column("to_version", sa.Integer),  # NULL: the label was removed
    sa.Column("moved_by", sa.String(40)),
    sa.Column("moved_at", Time, nullable=False),
    sa.Index("ix_prompt_label_moves_prompt", "prompt_id", "moved_at"),
)

scores = sa.Table(
    "scores",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("data_type", sa.String(12), nullable=False),  # numeric | boolean | categorical
    sa.Column("value", sa.Float),  # numeric, or 1/0 for boolean
    sa.Column("label", sa.String(200)),  # categorical
    sa.Column("comment", sa.Text),
    sa.Column("source", sa.String(20), nullable=False),  # feedback | annotation | evaluator | api
    sa.Column("trace_id", sa.String(40)),
    sa.Column("observation_id", sa.String(100)),
    sa.Column("chat_id", sa.ForeignKey("chats.id", ondelete="CASCADE")),
    sa.Column("message_id", sa.ForeignKey("messages.id", ondelete="CASCADE")),
    sa.Column("author", sa.String(40)),
    # One score per key (a user's thumbs on a reply: `feedback:{message}:{user}`), else NULL.
    sa.Column("key", sa.String(200), unique=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_scores_account_created", "account_id", "created_at"),
    sa.Index("ix_scores_trace", "trace_id"),
    sa.Index("ix_scores_chat", "chat_id"),
)

# Review queues: rules (JSON) add traces to a queue as items; a reviewer steps through them.
review_queues = sa.Table(
    "review_queues",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("rules", sa.Text, nullable=False),  # JSON [{kind, value?, name?}]
    sa.Column("scores", sa.Text, nullable=False),  # JSON [{name, data_type, categories?}]
    sa.Column("since", Time, nullable=False),  # rules look at traces from then on
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", Time, nullable=False),
)

review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("queue_id", sa.ForeignKey("review_queues.id", ondelete="CASCADE"), nullable=False),
    sa.Column("trace_id", sa.String(40), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),  # the rule that added it
    sa.Column("status", sa.String(10), nullable=False),  # pending | skipped | done
    sa.Column("claimed_by", sa.String(40)),  # the reviewer it was handed to, until claimed_at+5m
    sa.Column("claimed_at", Time),
    sa.Column("reviewed_by", sa.String(40)),
    sa.Column("reviewed_at", Time),
    sa.Column("added_at", Time, nullable=False),
    sa.UniqueConstraint("queue_id", "trace_id", name="uq_review_items_queue_trace"),
    sa.Index("ix_review_items_queue_status", "queue_id", "status", "added_at"),
)

# Datasets: items (input messages and variables, expected output) that experiments run.
datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("baseline_id", sa.String(40)),  # the experiment runs are compared against
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("account_id", "name", name="uq_datasets_account_name"),
)

dataset_items = sa.Table(
    "dataset_items",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("dataset_id", sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("input", sa.Text, nullable=False),  # JSON {messages: [{role, content}], variables}
    sa.Column("expected", sa.Text),  # the expected output, as text
    sa.Column("metadata", sa.Text, nullable=False),  # JSON object
    sa.Column("source_reply_id", sa.String(40)),  # "add to dataset" from a reply
    sa.Column("status", sa.String(10), nullable=False),  # active | archived
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_dataset_items_dataset", "dataset_id", "status", "created_at"),
)

# Evaluators: a kind and its config; `sample` > 0 also runs it on that share of live traces.
evaluators = sa.Table(
    "evaluators",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),  # the name of the scores it gives
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # JSON, by kind
    sa.Column("sample", sa.Float, nullable=False),  # 0..1 of live traces; 0: experiments only
    sa.Column("filter", sa.Text, nullable=False),  # JSON {agent_id?, model?, prompt_name?}
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("account_id", "name", name="uq_evaluators_account_name"),
)

# An experiment: a dataset run against an agent (with its tools) or a prompt version and model.
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("dataset_id", sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("target", sa.Text, nullable=False),  # JSON {agent_id, model?} | {prompt, model}
    sa.Column("evaluators", sa.Text, nullable=False),  # JSON [evaluator id]
    sa.Column("concurrency", sa.Integer, nullable=False),
    # queued | running | stopping | stopped | completed
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("done", sa.Integer, nullable=False),  # items with a result (failed included)
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("progress", sa.Integer, nullable=False),  # +1 with every change: events' order
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("started_at", Time),
    sa.Column("ended_at", Time),
    sa.Index("ix_experiments_dataset", "dataset_id", "created_at"),
    sa.Index("ix_experiments_status", "status"),
)

experiment_items = sa.Table(
    "experiment_items",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column(
        "experiment_id", sa.ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("item_id", sa.String(40), nullable=False),  # the dataset item
    sa.Column("position", sa.Integer, nullable=False),
    # pending | running | scoring | done | failed | stopped
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("chat_id", sa.String(40)),
    sa.Column("reply_id", sa.String(40)),  # this attempt's reply; its trace is trace_id_of(it)
    sa.Column("trace_id", sa.String(40)),
    sa.Column("output", sa.Text),
    sa.Column("cost", sa.Float),
    sa.Column("tokens", sa.Integer),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("error", sa.Text),  # JSON {code, message}
    sa.Column("scores", sa.Text),  # JSON [{evaluator_id, name, data_type, value?, label?,
    #                                       explanation?, error?}]
    sa.Column("claimed_at", Time),  # running/scoring since: a stale claim is taken over
    sa.Column("started_at", Time),
    sa.Column("ended_at", Time),
    sa.UniqueConstraint("experiment_id", "item_id", name="uq_experiment_items_item"),
    sa.Index("ix_experiment_items_status", "experiment_id", "status", "position"),
    sa.Index("ix_experiment_items_reply", "reply_id"),  # a reply's end finds its item
)
