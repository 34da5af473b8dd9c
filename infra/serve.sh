#!/usr/bin/env bash
# `make serve`: a local Prefect server (SQLite under $PREFECT_HOME), the `clipline-process` work pool, every
# deployment in prefect.yaml, and a worker that runs their flow runs as subprocesses of this checkout.
# Stop it with Ctrl-C (the server stops with the worker). Then, from another shell:
#   export PREFECT_API_URL=http://127.0.0.1:4200/api
#   prefect deployment run 'pipeline/nightly' --param config='{"image_url_list": "...", ...}' --watch
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
HOST=${PREFECT_HOST:-127.0.0.1}
PORT=${PREFECT_PORT:-4200}
POOL=clipline-process
export CLIPLINE_REPO=$PWD
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.clipline/prefect}
export PREFECT_API_URL=http://$HOST:$PORT/api
export PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$PREFECT_HOME"

"$BIN/prefect" server start --host "$HOST" --port "$PORT" >"$PREFECT_HOME/server.log" 2>&1 &
SERVER=$!
WORKER=
trap 'kill $WORKER $SERVER 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 180); do
    "$BIN/python" -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" \
        2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { echo "serve: the Prefect server exited; see $PREFECT_HOME/server.log" >&2; exit 1; }
    sleep 1
done
echo "serve: Prefect server at $PREFECT_API_URL (UI: http://$HOST:$PORT, database in $PREFECT_HOME)"

"$BIN/prefect" work-pool create "$POOL" --type process --overwrite >/dev/null
"$BIN/prefect" --no-prompt deploy --all
echo "serve: deployments created; starting a worker on the $POOL pool"
"$BIN/prefect" worker start --pool "$POOL" &
WORKER=$!
wait "$WORKER"
