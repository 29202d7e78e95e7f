"""Settings, frozen, from `GAPLESS_*` environment variables, `.env`, or a `gapless.toml` file.

Precedence: environment, then `.env`, then the TOML file (`GAPLESS_CONFIG`
names another). Imports nothing from gapless. Read once by `runtime`;
everything else receives the values it needs as arguments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Endpoint(BaseModel):
    """An extra OpenAI-compatible server (Ollama, vLLM, LM Studio, OpenRouter...)."""

    name: str
    base_url: str
    api_key: str = ""
    models: tuple[str, ...] = ()


class McpServer(BaseModel):
    """An MCP server whose tools agents may call as `<name>.<tool>`: a command started over
    stdio (`command`, `args`, `env`), or a Streamable HTTP `url` (with `headers`)."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    url: str = ""
    headers: dict[str, str] = {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GAPLESS_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path(".gapless")
    database_url: str = ""  # default: SQLite in data_dir
    # PostgreSQL connections one process may open (every process of a scaled-out set
    # opens its own: keep processes x this, plus the queue's, under max_connections).
    database_pool: int = 10
    events_url: str = "memory://"
    queue_url: str = "memory://"
    # How often a streaming reply's row is written (seconds); never once per token.
    debounce: float = 0.2
    # How long the event log keeps events, and how long an idle chat's log lives.
    retention: float = 3600.0
    heartbeat: float = 15.0  # SSE keep-alive, and how often long subscriptions re-check access
    # A generation not heard from for this long is presumed dead and ended `interrupted`.
    lease_ttl: float = 6.0
    max_content: int = 32_000
    # Messages (posts and retries) per minute per user, and the most at once (429 beyond).
    rate_limit: float = 60.0
    rate_burst: float = 20.0
    # "" picks the embedded model when it is installed, else the demo model.
    default_model: str = ""
    # Providers that may be chosen: local, demo, openai, anthropic, bench (benchmarks only).
    providers: Annotated[tuple[str, ...], NoDecode] = ("local", "demo")
    demo_delay: float = 0.03  # seconds between the demo model's chunks
    local_threads: int = 1  # on a loaded 2-core machine one thread beat two by 10x
    local_max_tokens: int = 512
    local_context: int = 2048
    openai_api_key: str = ""
    openai_base_url: str = ""  # empty: api.openai.com
    openai_models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o")
    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    anthropic_models: tuple[str, ...] = ("claude-sonnet-4-5", "claude-haiku-4-5")
    anthropic_thinking_budget: int | None = None
    endpoints: tuple[Endpoint, ...] = ()
    provider_timeout: float = 60.0
    # Extra or overriding prices, USD per million tokens: {"openai:gpt-4o": [2.5, 10.0]}.
    prices: dict[str, tuple[float, float]] = {}
    public_url: str = ""  # the Origin browsers use, when behind a proxy

    # ---- agents and tools ----
    # Built-in tools agents may use; `fetch` (HTTP GET) only when listed here.
    tools: Annotated[tuple[str, ...], NoDecode] = ("calculator", "current_time", "search_chats")
    fetch_hosts: Annotated[tuple[str, ...], NoDecode] = ()  # hosts `fetch` may reach
    fetch_private: bool = False  # may `fetch` reach private, loopback, link-local addresses
    fetch_max_bytes: int = 1_000_000
    fetch_timeout: float = 10.0
    mcp_servers: tuple[McpServer, ...] = ()
    tool_timeout: float = 30.0  # seconds one tool call may run
    tool_output_max: int = 20_000  # characters of a tool's output kept (the rest is cut, saying so)
    max_steps: int = 25  # the highest step limit an agent may have (its default is 10)

    # ---- security ----
    max_body: int = 256 * 1024  # bytes of a request body, counted as received (any framing)
    body_timeout: float = 30.0  # seconds a request body may take to arrive (408 after)
    # Open SSE streams plus WebSocket subscriptions one user may hold at once (429 beyond).
    max_streams: int = 1000
    signin_attempts: int = 10  # failed sign-ins per email per window (429 with Retry-After)
    signin_address_attempts: int = 100  # failed sign-ins per client address per window
    signin_window: float = 900.0  # seconds
    password_min: int = 12  # characters (ASVS 2.1.1); common passwords are refused too
    session_days: float = 30.0
    invite_days: float = 7.0

    # ---- observability ----
    observe: bool = True  # record traces and delivery figures (off: the job tells no one)
    trace_content: bool = True  # traces keep messages, tool arguments and outputs
    trace_retention_days: float = 30.0  # traces (and content) older are deleted; roll-ups stay
    metrics_token: str = ""  # Prometheus `/metrics`: off when empty, else `Bearer <token>`

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(
            settings_cls, toml_file=os.environ.get("GAPLESS_CONFIG", "gapless.toml")
        )
        return (init_settings, env_settings, dotenv_settings, toml)

    @field_validator("providers", "tools", "fetch_hosts", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        """`demo,bench` or `["demo", "bench"]`: both read as the list they mean."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(name.strip() for name in text.split(",") if name.strip())
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gapless.db').as_posix()}"
