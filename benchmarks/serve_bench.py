"""Stop-gap launcher: `gapless serve` with the bench provider forced in.

Job: until the service wires `BenchProvider` behind `GAPLESS_PROVIDERS=...,bench`,
the runner falls back to this, which is `gapless serve` exactly (same CLI,
same uvicorn, same database) with the bench provider added to whatever
`runtime.build_providers` returns. The runner records which launcher it used.
"""

from __future__ import annotations

import sys

import gapless.runtime as runtime
from gapless.providers.bench import BenchProvider

_build = runtime.build_providers


def with_bench(settings: runtime.Settings) -> dict[str, runtime.Provider]:
    found = _build(settings)
    found.setdefault("bench", BenchProvider())
    return found


if __name__ == "__main__":
    runtime.build_providers = with_bench  # type: ignore[assignment]
    from gapless.cli import main

    sys.argv = ["gapless", *sys.argv[1:]]
    sys.exit(main())
