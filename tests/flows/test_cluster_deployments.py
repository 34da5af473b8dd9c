"""`make serve` + `prefect deployment run 'pipeline/nightly'`, exactly as a user runs the pipeline.

infra/serve.sh starts a Prefect server on loopback, creates the process work
pool, deploys prefect.yaml and starts a worker; the pipeline then crawls real
digits from a local HTTP server, trains, evaluates and compares the datasets,
and a second run takes every stage from the cache.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from clipline.flows.demo_sample import DIGIT_NAMES, build_digit_sample, serve_folder
from clipline.pipelines import storage
from clipline.pipelines.store.query import StoreReader, named_query_sql, run_query
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
           "CLIPLINE_HOME": str(root / "home"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "BIN": str(BIN),
           "PREFECT_WORKER_QUERY_SECONDS": "2"}  # the worker picks a flow run up within 2 s, not 10
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


def write_url_lists(sample: list, base_url: str, folder: str) -> None:
    """Training (400) and held-out (100) digit URL lists, with labels, into a folder or s3:// prefix."""
    for name, rows in [("train.csv", sample[:400]), ("held-out.csv", sample[4000:4100])]:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["url", "caption", "label"])
        writer.writerows((f"{base_url}/digits/{file}", caption, label) for file, caption, label in rows)
        storage.write_text(storage.join(folder, name), text.getvalue())


@pytest.fixture(scope="module")
def digits_site(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("digits")
    return root / "site", build_digit_sample(root / "site" / "digits")


@pytest.fixture(scope="module")
def url_lists(digits_site, tmp_path_factory):
    """Training and held-out digit URL lists served over loopback for the module's lifetime."""
    site, sample = digits_site
    root = tmp_path_factory.mktemp("lists")
    with serve_folder(site) as base_url:
        write_url_lists(sample, base_url, str(root))
        yield root


def deployment_run(env: dict, config: dict, job_env: dict | None = None) -> subprocess.CompletedProcess:
    """`prefect deployment run 'pipeline/nightly'`; `job_env` is the flow run's environment (a job variable)."""
    job = ["--job-variable", f"env={json.dumps(job_env)}"] if job_env else []
    return subprocess.run([str(BIN / "prefect"), "deployment", "run", "pipeline/nightly",
                           "--param", f"config={json.dumps(config)}", *job, "--watch"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def pipeline_config(lists: str, root: str, **overrides) -> dict:
    return {"image_url_list": storage.join(lists, "train.csv"), "eval_url_list": storage.join(lists, "held-out.csv"),
            "classnames": DIGIT_NAMES, "workdir": storage.join(root, "work"), "allowed_networks": ["127.0.0.0/8"],
            "image_size": 32, "steps": 6, "batch_size": 32, "warmup": 1, "distance_samples": 40,
            "store": {"results_uri": storage.join(root, "results")}, **overrides}


def check_pipeline_runs(env: dict, config: dict, job_env: dict | None = None) -> None:
    """Run the deployment: every stage completes and lands in the store; a rerun takes each from the cache."""
    first = deployment_run(env, config, job_env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results, workdir = config["store"]["results_uri"], config["workdir"]
    with StoreReader(results) as store:  # one listing of the store for all the checks (on S3: seconds each)
        flows = store.query("SELECT flow, count(*) FROM runs WHERE status = 'completed' GROUP BY flow").rows
        assert dict(flows) == {"ingest_images": 2, "curate": 1, "train_clip": 1, "evaluate": 1, "dataset_distance": 1}
        assert store.query("SELECT count(*) FROM ingest_latest WHERE status = 'success'").rows == [(500,)]
        (total, kept, output), = store.query("SELECT total, kept, output_uri FROM curation_runs").rows
        assert total == 400 and 0 < kept <= total
        assert output.startswith(storage.join(workdir, "datasets", "curated-"))
        trained_on = store.query("SELECT json_extract_string(config, '$.data') FROM runs "
                                 "WHERE flow = 'train_clip'").rows
        assert trained_on == [(output,)]
        assert store.query("SELECT max(step) FROM checkpoints").rows == [(6,)]
        assert store.query("SELECT count(DISTINCT task) FROM eval_results").rows == [(3,)]
    assert len(storage.read_bytes(storage.join(workdir, "report.html"))) > 10_000
    artifacts = subprocess.run([str(BIN / "prefect"), "artifact", "ls"], env=env,
                               capture_output=True, text=True, timeout=120).stdout
    for key in ("pipeline-summary", "ingest-report", "training-report", "evaluation-report", "distance-report"):
        assert key in artifacts  # each flow leaves a markdown summary

    second = deployment_run(env, config, job_env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert len(run_query(results, "SELECT * FROM runs").rows) == 6  # no stage ran again


@pytest.mark.skipif(os.geteuid() == 0, reason="as root the cluster test below runs the same deployment, over S3")
def test_pipeline_deployment_runs_every_stage_and_a_rerun_takes_them_from_the_cache(served, url_lists):
    env, root = served
    check_pipeline_runs(env, pipeline_config(str(url_lists), str(root), curate={"dedup": "exact"}))


def test_pipeline_deployment_runs_on_the_cluster_over_s3(served, digits_site, local_cluster, monkeypatch):
    """The same deployment with its flow run on the multi-node cluster (the run's environment: RAY_ADDRESS and
    S3), every location on s3://: URL lists, shards, checkpoints, store, Prefect results and cache keys, report.
    The fan-out stages ran on at least 2 nodes; the rerun takes every stage from the cache on S3."""
    env, _ = served
    local_cluster.ensure_worker_nodes(2)  # the node-kill tests before this one leave one worker node
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, local_cluster.env[name])
    root = f"s3://clipline/pipeline-{uuid.uuid4().hex[:8]}"
    site, sample = digits_site
    with serve_folder(site, host=local_cluster.driver_ip) as base_url:  # on the bridge: every node reaches it
        write_url_lists(sample, base_url, f"{root}/lists")
        config = pipeline_config(f"{root}/lists", root, curate={"dedup": "exact"}, samples_per_shard=100,
                                 allowed_networks=[local_cluster.env["CLUSTER_ALLOWED_NETWORKS"]],
                                 ingest_workers=2, train_workers=2, eval_workers=2, distance_workers=2)
        check_pipeline_runs(env, config, job_env=local_cluster.env)
    by_node = run_query(config["store"]["results_uri"], named_query_sql("work_by_node")).rows
    nodes = {}
    for ip, _, stage, _, _ in by_node:
        nodes.setdefault(stage, set()).add(ip)
    assert not set().union(*nodes.values()) - {local_cluster.node_ip(i) for i in range(10)}, nodes
    for stage in ("ingest", "train", "distance embeddings"):
        assert len(nodes.get(stage, ())) >= 2, f"{stage} ran on {nodes.get(stage)}: one node only"
    assert nodes.get("evaluate"), nodes  # one (checkpoint, dataset) pair: one task


def test_a_bad_parameter_fails_at_validation_naming_it(served, url_lists):
    env, root = served
    bad = deployment_run(env, pipeline_config(str(url_lists), str(root / "bad"), steps=0))
    assert bad.returncode != 0
    assert "steps" in bad.stdout + bad.stderr
    assert not (root / "bad" / "work").exists()
