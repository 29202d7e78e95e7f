"""Settings, frozen, from `GAPLESS_*` environment variables or a `.env`/settings file.

Imports nothing from gapless. Read once by `runtime`; everything else receives
the values it needs as arguments.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GAPLESS_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path(".gapless")
    database_url: str = ""  # default: sqlite in data_dir
    events_url: str = "memory://"
    queue_url: str = "memory://"
    # How often a streaming reply's row is written (seconds); never once per token.
    debounce: float = 0.2
    # How long the event log keeps events, and how long an idle chat's log lives.
    retention: float = 3600.0
    heartbeat: float = 15.0
    max_content: int = 32_000
    default_model: str = "demo:default"
    # Providers that may be chosen (`provider:model` names are checked against these).
    providers: tuple[str, ...] = ("demo",)
    demo_delay: float = 0.03  # seconds between the demo provider's chunks
    public_url: str = ""  # the Origin browsers use, when behind a proxy

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gapless.db').as_posix()}"
