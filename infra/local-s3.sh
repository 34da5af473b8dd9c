#!/usr/bin/env bash
# A local S3-compatible server for development (moto in server mode, from the dev extras),
# on loopback. Point clipline at it with the variables this script prints, then use
# s3://BUCKET/... locations anywhere a path is accepted.
#
#   infra/local-s3.sh [PORT] [BUCKET]
set -euo pipefail
port="${1:-5000}"
bucket="${2:-clipline}"
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${VENV:-$here/.venv}/bin/python"
"$python" -m moto.server -H 127.0.0.1 -p "$port" &
server=$!
trap 'kill $server' EXIT INT TERM
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 50); do "$python" - <<PY 2>/dev/null && break || sleep 0.2
import s3fs; s3fs.S3FileSystem().mkdir("$bucket")
PY
done
cat <<TXT
S3 server on $AWS_ENDPOINT_URL with bucket s3://$bucket (Ctrl-C stops it). In another shell:
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev AWS_DEFAULT_REGION=us-east-1
  .venv/bin/clipline sql --results-uri s3://$bucket/results --query runs
TXT
wait $server
