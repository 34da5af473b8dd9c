"""bench/gpu.sh --dry-run: shards, both trainers' command lines and ViT-B-32 on CPU, stopping before CUDA."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[3]


def test_gpu_bench_dry_run_builds_everything_and_stops_before_cuda(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--dry-run", "--work", str(tmp_path),
                           "--shards", "2", "--per-shard", "10", "--out", str(tmp_path / "benchmarks.md")],
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stopping before CUDA" in proc.stdout
    lines = {line.split(":", 1)[0]: line for line in proc.stdout.splitlines() if ": " in line}
    assert "--gpu --precision bf16" in lines["clipline"] and "--compile" in lines["clipline --compile"]
    assert "--precision amp_bf16" in lines["open_clip"] and "--torchcompile" in lines["open_clip --compile"]
    assert "ViT-B-32" in lines["open_clip"] and "webdataset-0.2.86" in lines["open_clip"]
    assert json.loads((tmp_path / "shards" / "sizes.json").read_text()) == {"00000.tar": 10, "00001.tar": 10}
    with tarfile.open(tmp_path / "shards" / "00001.tar") as tar:
        names = tar.getnames()
        photo = tar.extractfile(next(n for n in names if n.endswith("9.jpg"))).read()
    assert len(names) == 20
    assert Image.open(io.BytesIO(photo)).size == (224, 224)
    assert not (tmp_path / "benchmarks.md").exists() and not (tmp_path / "runs").exists()
