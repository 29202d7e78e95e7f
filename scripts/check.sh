#!/usr/bin/env bash
# The whole test suite: lint, types, the JavaScript reducer tests, then pytest.
# The browser tests run in a pytest process of their own: Playwright's sync API keeps
# an event loop running in the main thread, which the async tests cannot share.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> ruff";  .venv/bin/ruff check src tests benchmarks
echo "==> mypy";  .venv/bin/mypy
echo "==> node";  node --test tests/js/
echo "==> pytest (service, engines, scale-out)"
.venv/bin/python -m pytest --ignore=tests/browser "$@"
echo "==> pytest (browser)"
.venv/bin/python -m pytest tests/browser "$@"
