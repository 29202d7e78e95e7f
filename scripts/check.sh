#!/usr/bin/env bash
# The whole test suite: lint, types, the JavaScript reducer tests, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> ruff";  .venv/bin/ruff check src tests benchmarks
echo "==> mypy";  .venv/bin/mypy
echo "==> node";  node --test tests/js/
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
