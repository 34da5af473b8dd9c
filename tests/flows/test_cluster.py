"""The pipeline on a real multi-node Ray cluster (infra/local-cluster.sh: a namespace per node, no shared
disk, S3 only), and a worker node lost mid-ingest."""

from __future__ import annotations

import io
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


def test_training_runs_on_two_worker_nodes_over_s3(local_cluster, on_cluster_s3, prefect_server, tmp_path):
    """Ray Train's workers on two nodes that share no disk: shards, checkpoints and the store on S3. (The
    driver must name its own node, CLIPLINE_RAY_NODE_IP: attached to the head's, its training function never
    reached the workers, which waited forever.)"""
    from support.shards import write_digit_shards

    write_digit_shards(tmp_path / "shards", num_shards=4, per_shard=64)
    root = on_cluster_s3
    for path in sorted((tmp_path / "shards").iterdir()):
        storage.write_bytes(f"{root}/shards/{path.name}", path.read_bytes())
    out, results = f"{root}/run", f"{root}/results"
    command = [str(Path(sys.executable).parent / "clipline"), "train", "--data", f"{root}/shards/{{00000..00003}}.tar",
               "--out", out, "--results-uri", results, "--workers", "2", "--steps", "6", "--batch-size", "16",
               "--model", "clipline-tiny", "--log-every", "2"]
    done = subprocess.run(command, env=os.environ | local_cluster.env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert storage.exists(f"{out}/checkpoints/step-00000006/_COMMITTED")
    workers = run_query(results, "SELECT rank, world_size, node FROM train_workers ORDER BY rank").rows
    assert [(rank, world) for rank, world, _ in workers] == [(0, 2), (1, 2)]
    worker_ips = {local_cluster.node_ip(1), local_cluster.node_ip(2), local_cluster.node_ip(0)}
    ips = {node.split("/")[0] for _, _, node in workers}
    assert len(ips) == 2 and ips <= worker_ips, (ips, worker_ips)
