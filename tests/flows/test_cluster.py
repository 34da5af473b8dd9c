"""The pipeline on a real multi-node Ray cluster (infra/local-cluster.sh: a namespace per node, no shared
disk, S3 only), and a worker node lost mid-ingest."""

from __future__ import annotations

import io
import logging
import math
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from clipline.pipelines import storage
from clipline.pipelines.store.query import named_query_sql, run_query

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera"]
NUM_SHARDS, PER_SHARD = 12, 6


@pytest.fixture
def on_cluster_s3(local_cluster, monkeypatch):
    """This process reads and writes the cluster's S3 (the driver does the same through the CLI)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, local_cluster.env[name])
    return f"s3://clipline/{uuid.uuid4().hex[:10]}"


def write_url_list(server, uri: str) -> tuple[str, int]:
    """Each shard: one slow URL (fails at the total-time limit, so shards take a few seconds), one 404, and
    good photos with unique query strings. Returns the list's URI and the number of good rows."""
    lines, good = ["url,caption"], 0
    for shard in range(NUM_SHARDS):
        for i in range(PER_SHARD):
            photo = f"/img/{PHOTOS[(shard + i) % len(PHOTOS)]}.jpg?s={shard}&i={i}"
            path = "/slow.jpg" if i == 0 else "/404" if i == 1 else photo
            good += path.startswith("/img/")
            lines.append(f"{server.url(path)},a photo number {shard}-{i}")
    storage.write_text(uri, "\n".join(lines) + "\n")
    return uri, good


def clipline_ingest(cluster, url_list: str, out: str, results: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "clipline"), "ingest", url_list, "--out", out,
               "--results-uri", results, "--samples-per-shard", str(PER_SHARD), "--workers", "3",
               "--allowed-networks", cluster.env["CLUSTER_ALLOWED_NETWORKS"], "--timeout-s", "3", "--retries", "0",
               "--image-size", "64", "--resize-mode", "center_crop"]
    env = os.environ | cluster.env
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def stored_members(out: str) -> list[str]:
    members = []
    for tar_uri in storage.glob(storage.join(out, "*.tar")):
        with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(tar_uri))) as tar:
            members += [m.name for m in tar if m.name.endswith(".jpg")]
    return members


def test_ingest_over_s3_survives_losing_a_worker_node(local_cluster, on_cluster_s3, prefect_server):
    from support.http_server import TestHTTPServer

    root = on_cluster_s3
    out, results = f"{root}/shards", f"{root}/results"
    with TestHTTPServer(host=local_cluster.driver_ip) as server:  # on the bridge: every node reaches it
        url_list, num_good = write_url_list(server, f"{root}/urls.csv")
        crawl = clipline_ingest(local_cluster, url_list, out, results)
        deadline = time.time() + 180
        while not storage.glob(f"{out}/*_stats.json"):
            assert crawl.poll() is None, crawl.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "no shard committed in time"
            time.sleep(0.5)
        on_workers = {name: ip for name, ip in local_cluster.actor_ips().items()
                      if ip in {local_cluster.node_ip(1), local_cluster.node_ip(2)}}
        assert not on_workers, f"the driver's actors live on worker nodes that may be lost: {on_workers}"
        local_cluster.kill_node(1)
        killed_at = time.time()
        committed_at_kill = len(storage.glob(f"{out}/*_stats.json"))
        _, err = crawl.communicate(timeout=240)
    assert crawl.returncode == 0, err.decode()[-3000:]
    assert committed_at_kill < NUM_SHARDS, "the crawl finished before the node was killed"

    members = stored_members(out)
    assert len(members) == num_good and len(set(members)) == num_good, "a good sample is missing or stored twice"
    shards = run_query(results, "SELECT shard_id, node, epoch(written_at) FROM ingest_shards").rows
    by_shard = {shard_id for shard_id, _, _ in shards}
    assert by_shard == set(range(NUM_SHARDS)) and len(shards) == NUM_SHARDS, "a shard is missing or counted twice"
    ips = {node.split("/")[0] for _, node, _ in shards}
    assert len(ips) >= 2, f"the shards ran on one node only: {ips}"
    lost_ip = local_cluster.node_ip(1)
    assert not [s for s, node, at in shards if node.startswith(lost_ip + "/") and at > killed_at], \
        "a shard was committed by the lost node after it died"
    latest = run_query(results, "SELECT count(DISTINCT shard_id), count(*), count(*) FILTER (status = 'success') "
                                "FROM ingest_latest").rows[0]
    assert latest == (NUM_SHARDS, NUM_SHARDS * PER_SHARD, num_good)
    by_node = run_query(results, named_query_sql("work_by_node")).rows
    assert len({ip for ip, _, stage, _, _ in by_node if stage == "ingest"}) >= 2, by_node


def upload_digit_shards(root: str, tmp_path: Path) -> str:
    """Four shards of real digit images on the cluster's S3; returns their brace pattern."""
    from support.shards import write_digit_shards

    write_digit_shards(tmp_path / "shards", num_shards=4, per_shard=64)
    for path in sorted((tmp_path / "shards").iterdir()):
        storage.write_bytes(f"{root}/shards/{path.name}", path.read_bytes())
    return f"{root}/shards/{{00000..00003}}.tar"


def clipline_train(data: str, out: str, results: str, *options: str) -> list[str]:
    return [str(Path(sys.executable).parent / "clipline"), "train", "--data", data, "--out", out,
            "--results-uri", results, "--batch-size", "16", "--model", "clipline-tiny", *options]


def wait_for(results: str, sql: str, run: subprocess.Popen, what: str, timeout: float = 240) -> list[tuple]:
    """Poll the store until `sql` returns rows (the run must still be going)."""
    deadline = time.time() + timeout
    while True:
        rows = run_query(results, sql).rows
        if rows:
            return rows
        assert run.poll() is None, f"the run ended before {what}: {run.stderr.read().decode()[-3000:]}"
        assert time.time() < deadline, f"no {what} in {timeout} s"
        time.sleep(1)


STEPS, WARMUP, KILL_AFTER = 50, 10, 8  # checkpoints every 5 steps: the run restarts from step 5 or 10


def test_training_goes_on_when_a_node_is_lost_and_grows_back(local_cluster, on_cluster_s3, prefect_server,
                                                           tmp_path):
    """Elastic training (--workers 2 --min-workers 1) on two nodes: one is killed mid-run, the run restarts
    from its last checkpoint on the node that remains with accumulation doubled, and grows back to 2
    workers when a new node joins; the step counter and learning-rate schedule go on unchanged. (Workers on
    two nodes also need the driver to name its own node, CLIPLINE_RAY_NODE_IP: attached to the head's, its
    training function never reached the workers, which waited forever.)"""
    alive = local_cluster.alive_nodes()
    for ip in sorted(alive - {local_cluster.node_ip(0)})[1:]:  # head + one worker node: a lost node shrinks
        local_cluster.kill_node(local_cluster.worker_of(ip))
    root = on_cluster_s3
    data = upload_digit_shards(root, tmp_path)
    out, results = f"{root}/run", f"{root}/results"
    command = clipline_train(data, out, results, "--workers", "2", "--min-workers", "1", "--steps", str(STEPS),
                             "--checkpoint-every", "5", "--log-every", "1", "--resize-interval-s", "5",
                             "--warmup", str(WARMUP), "--lr", "5e-4")
    # Ray Train retries a worker group whose placement group is not ready in time: 10 s instead of 60 s bounds
    # the wait for a group still sized for the lost node (the timeout covers placing the group, not starting
    # the workers, which takes longer on 2 loaded cores).
    env = os.environ | local_cluster.env | {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "10"}
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    log.info("started the run")
    try:
        wait_for(results, f"SELECT step FROM train_metrics WHERE step >= {KILL_AFTER}", run, f"step {KILL_AFTER}")
        first = run_query(results, "SELECT split_part(node, '/', 1) FROM train_workers").rows
        victim = next(ip for (ip,) in first if ip != local_cluster.node_ip(0))
        local_cluster.kill_node(local_cluster.worker_of(victim))
        log.info("killed node %s", victim)
        wait_for(results, "SELECT 1 FROM train_workers WHERE world_size = 1", run, "restart on one worker")
        log.info("restarted on one worker")
        local_cluster.add_node()
        log.info("added a node")
        _, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)
    assert run.returncode == 0, err.decode()[-3000:]
    assert storage.exists(f"{out}/checkpoints/step-{STEPS:08d}/_COMMITTED")

    attempts = run_query(results, """
        SELECT min(started_at), world_size, any_value(accum_freq), from_step, list(split_part(node, '/', 1))
        FROM train_workers GROUP BY from_step, world_size ORDER BY 1""").rows  # one row per attempt
    log.info("attempts (started, world, accum, from step, nodes): %s", attempts)
    shapes = [(world, accum) for _, world, accum, _, _ in attempts]
    assert shapes == [(2, 1), (1, 2), (2, 1)], attempts  # shrunk with accumulation doubled, then grown back
    (_, _, _, _, ips_before), (_, _, _, shrunk_from, ips_shrunk), (_, _, _, grown_from, ips_grown) = attempts
    assert victim in ips_before and victim not in ips_shrunk + ips_grown
    assert set(ips_grown) - set(ips_before), "the grown-back run did not use the new node"
    assert 0 < shrunk_from < grown_from < STEPS and shrunk_from % 5 == 0 and grown_from % 5 == 0  # checkpoints

    # Every step logged with the global batch of 2 x 16.
    logs = run_query(results, """
        SELECT step, max(value) FILTER (name = 'lr'), max(value) FILTER (name = 'workers'),
               max(value) FILTER (name = 'accum_freq')
        FROM train_metrics GROUP BY step, time ORDER BY step, time""").rows  # one row per step per attempt
    assert sorted({step for step, *_ in logs}) == list(range(1, STEPS + 1))
    assert all(workers * accum == 2 for _, _, workers, accum in logs), logs
    assert {workers for _, _, workers, _ in logs} == {1, 2}
    # Each logged step's learning rate is the one the run's schedule gives that step (the global step goes
    # on from the checkpoint): open_clip's warm-up then cosine, at the step before the increment.
    for step, lr, _, _ in logs:
        done = step - 1
        expected = 5e-4 * (done + 1) / WARMUP if done < WARMUP else \
            0.5 * (1 + math.cos(math.pi * (done - WARMUP) / (STEPS - WARMUP))) * 5e-4
        assert lr == pytest.approx(expected, rel=1e-6), (step, lr, expected)
