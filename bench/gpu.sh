#!/usr/bin/env bash
# One GPU, within about 8 minutes: ViT-B-32 in bf16 on real shards made on the spot (offline digits and
# scikit-image photos upscaled to 224 px), clipline vs open_clip's trainer, --compile off and on; then the
# GPU-trained checkpoint loaded and evaluated on CPU. Writes its section of docs/benchmarks.md.
#
#   bash bench/gpu.sh [--dry-run] [--steps 300] [--batch-size 256] [--work .bench/gpu]
#
# --dry-run makes the shards, validates both trainers' command lines, builds ViT-B-32 on CPU and runs it on a
# shard batch, then stops before anything touches CUDA (it runs on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" bench/gpu.py "$@"
