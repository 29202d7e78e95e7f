#!/usr/bin/env bash
# Starts Gapless scaled out on this machine: PostgreSQL for state, Redis for the event log,
# the job queue in Redis (or in PostgreSQL: QUEUE=postgresql), API processes sharing one
# port, and generation workers.
# Prints the URL and an API token (the last `token: gl_...` line), then a line starting
# `scaled out:` once every process is ready; Ctrl-C (or SIGTERM) stops everything it started.
#
#   scripts/scaled.sh                          2 API processes + 1 worker on :8000
#   PORT=9000 API_PROCESSES=4 WORKERS=2 CONCURRENCY=16 scripts/scaled.sh
#   QUEUE=postgresql scripts/scaled.sh         the job queue in the PostgreSQL database
#   GAPLESS_PROVIDERS='["demo","bench"]' scripts/scaled.sh    (benchmarks)
#
# Settings (defaults): PORT 8000, HOST 127.0.0.1, API_PROCESSES 2, WORKERS 1,
# CONCURRENCY 8, SCALED_DB gapless_scaled (created if missing), REDIS_DB 1,
# QUEUE redis (or postgresql).
# Any GAPLESS_* variable set by the caller wins over these.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
HOST="${HOST:-127.0.0.1}"
API_PROCESSES="${API_PROCESSES:-2}"
WORKERS="${WORKERS:-1}"
CONCURRENCY="${CONCURRENCY:-8}"
SCALED_DB="${SCALED_DB:-gapless_scaled}"
REDIS_DB="${REDIS_DB:-1}"
QUEUE="${QUEUE:-redis}"
GAPLESS=.venv/bin/gapless

scripts/services.sh
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$SCALED_DB'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$SCALED_DB\""
fi
export GAPLESS_DATABASE_URL="${GAPLESS_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/$SCALED_DB}"
export GAPLESS_EVENTS_URL="${GAPLESS_EVENTS_URL:-redis://127.0.0.1:6379/$REDIS_DB}"
case "$QUEUE" in
  redis) queue_url="redis://127.0.0.1:6379/$REDIS_DB" ;;
  postgresql | postgres) queue_url="postgresql://postgres@127.0.0.1:5432/$SCALED_DB" ;;
  *) echo "QUEUE must be redis or postgresql, not $QUEUE" >&2; exit 2 ;;
esac
export GAPLESS_QUEUE_URL="${GAPLESS_QUEUE_URL:-$queue_url}"
export PYTHONUNBUFFERED=1

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

# serve migrates and bootstraps once in its parent before the API processes start.
"$GAPLESS" serve --host "$HOST" --port "$PORT" --workers "$API_PROCESSES" &
pids+=($!)
for _ in $(seq 1 150); do
  curl -fso /dev/null "http://127.0.0.1:$PORT/" && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "gapless serve exited" >&2; exit 1; }
  sleep 0.2
done
for _ in $(seq 1 "$WORKERS"); do
  "$GAPLESS" worker --concurrency "$CONCURRENCY" &
  pids+=($!)
done
# Ready when every worker has announced itself in the queue (SAQ's worker info).
announced() {
  case "$GAPLESS_QUEUE_URL" in
    redis*) redis-cli -u "$GAPLESS_QUEUE_URL" --scan --pattern 'saq:gapless:worker_info:*' | wc -l ;;
    *) psql "${GAPLESS_QUEUE_URL/+asyncpg/}" -tAc "SELECT count(*) FROM saq_stats
         WHERE queue_key = 'gapless' AND expire_at >= extract(epoch FROM now())" 2>/dev/null \
         || echo 0 ;;
  esac
}
for _ in $(seq 1 150); do
  [ "$(announced)" -ge "$WORKERS" ] && break
  sleep 0.2
done
"$GAPLESS" token
echo "scaled out: $API_PROCESSES API processes on http://127.0.0.1:$PORT, $WORKERS worker(s)" \
  "x $CONCURRENCY; PostgreSQL $SCALED_DB, Redis db $REDIS_DB, queue in ${GAPLESS_QUEUE_URL%%:*}." \
  "Ctrl-C stops all."
wait -n "${pids[@]}" || true
echo "a process of the scaled-out set exited; stopping the others" >&2
