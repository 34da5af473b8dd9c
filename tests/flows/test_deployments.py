"""`make serve` + `prefect deployment run 'pipeline/nightly'`, exactly as a user runs the pipeline.

infra/serve.sh starts a Prefect server on loopback, creates the process work
pool, deploys prefect.yaml and starts a worker; the pipeline then crawls real
digits from a local HTTP server, trains, evaluates and compares the datasets,
and a second run takes every stage from the cache.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clipline.flows.demo_sample import DIGIT_NAMES, build_digit_sample, serve_folder
from clipline.pipelines.store.query import run_query
from support.net import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtual environment running the tests (CI keeps it outside the clone)

SERVE_TIMEOUT_S = 300
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A Prefect server with clipline's deployments and a worker, started by infra/serve.sh."""
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {**os.environ, "PREFECT_PORT": str(port), "PREFECT_HOME": str(root / "prefect"),
           "CLIPLINE_HOME": str(root / "home"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "BIN": str(BIN)}
    env.pop("RAY_ADDRESS", None)  # flow runs start their own Ray, as on a user's machine
    log = (root / "serve.log").open("w")
    process = subprocess.Popen([str(REPO / "infra" / "serve.sh")], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while "starting a worker" not in (root / "serve.log").read_text():
        assert process.poll() is None and time.monotonic() < deadline, (root / "serve.log").read_text()[-3000:]
        time.sleep(1)
    yield env, root
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def url_lists(tmp_path_factory):
    """Training and held-out digit URL lists served over loopback for the module's lifetime."""
    root = tmp_path_factory.mktemp("digits")
    sample = build_digit_sample(root / "site" / "digits")
    with serve_folder(root / "site") as base_url:
        for name, rows in [("train.csv", sample[:400]), ("held-out.csv", sample[4000:4100])]:
            with (root / name).open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["url", "caption", "label"])
                writer.writerows((f"{base_url}/digits/{file}", text, label) for file, text, label in rows)
        yield root


def deployment_run(env: dict, config: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefect"), "deployment", "run", "pipeline/nightly",
                           "--param", f"config={json.dumps(config)}", "--watch"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def pipeline_config(url_lists: Path, root: Path, **overrides) -> dict:
    return {"image_url_list": str(url_lists / "train.csv"), "eval_url_list": str(url_lists / "held-out.csv"),
            "classnames": DIGIT_NAMES, "workdir": str(root / "work"), "allowed_networks": ["127.0.0.0/8"],
            "image_size": 32, "steps": 6, "batch_size": 32, "warmup": 1, "distance_samples": 40,
            "store": {"results_uri": str(root / "results")}, **overrides}


def test_pipeline_deployment_runs_every_stage_and_a_rerun_takes_them_from_the_cache(served, url_lists):
    env, root = served
    config = pipeline_config(url_lists, root, curate={"dedup": "exact"})  # + decontamination against held-out
    first = deployment_run(env, config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = str(root / "results")
    flows = run_query(results, "SELECT flow, count(*) FROM runs WHERE status = 'completed' GROUP BY flow").rows
    assert dict(flows) == {"ingest_images": 2, "curate": 1, "train_clip": 1, "evaluate": 1, "dataset_distance": 1}
    assert run_query(results, "SELECT count(*) FROM ingest_latest WHERE status = 'success'").rows == [(500,)]
    (total, kept, output), = run_query(results, "SELECT total, kept, output_uri FROM curation_runs").rows
    assert total == 400 and 0 < kept <= total and output.startswith(str(root / "work" / "datasets" / "curated-"))
    trained_on = run_query(results, "SELECT json_extract_string(config, '$.data') FROM runs "
                                     "WHERE flow = 'train_clip'").rows
    assert trained_on == [(output,)]
    assert run_query(results, "SELECT max(step) FROM checkpoints").rows == [(6,)]
    assert run_query(results, "SELECT count(DISTINCT task) FROM eval_results").rows == [(3,)]
    assert (root / "work" / "report.html").stat().st_size > 10_000
    artifacts = subprocess.run([str(BIN / "prefect"), "artifact", "ls"], env=env,
                               capture_output=True, text=True, timeout=120).stdout
    for key in ("pipeline-summary", "ingest-report", "training-report", "evaluation-report", "distance-report"):
        assert key in artifacts  # each flow leaves a markdown summary

    second = deployment_run(env, config)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert len(run_query(results, "SELECT * FROM runs").rows) == 6  # no stage ran again


def test_a_bad_parameter_fails_at_validation_naming_it(served, url_lists):
    env, root = served
    bad = deployment_run(env, pipeline_config(url_lists, root / "bad", steps=0))
    assert bad.returncode != 0
    assert "steps" in bad.stdout + bad.stderr
    assert not (root / "bad" / "work").exists()
