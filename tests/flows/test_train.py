"""Training with real Ray Train workers, and the train_clip flow."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from clipline.pipelines.config import StoreConfig, TrainConfig
from clipline.pipelines.store.query import run_query
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.trainer import fit, plan_training
from support.shards import write_digit_shards

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digit_shards(root, num_shards=4, per_shard=32)
    return f"{root}/{{00000..00003}}.tar"


def config_for(shards: str, tmp_path, name: str, **overrides) -> TrainConfig:
    settings = dict(data=shards, output_uri=str(tmp_path / name), steps=4, batch_size=32, lr=1e-4, warmup=1,
                    log_every=1, checkpoint_every=4, shuffle=0, augment=False, data_workers=0, seed=7,
                    store=StoreConfig(results_uri=str(tmp_path / f"{name}-results")))
    return TrainConfig(**{**settings, **overrides})


def losses(config: TrainConfig, run_id: str) -> list[float]:
    return [v for (v,) in run_query(config.store.results_uri, f"SELECT value FROM train_metrics WHERE "
                                    f"run_id = '{run_id}' AND name = 'loss' ORDER BY step").rows]


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_two_workers_with_batch_b_train_like_one_with_batch_2b(ray_cluster, shards, tmp_path, loss):
    # Shards hold exactly one worker batch each and are read in order, so step i sees shards 2i and 2i+1
    # in both set-ups: one worker reads them as one batch of 64, two workers as 32 each, gathered (ClipLoss:
    # all_gather with gradients; SigLipLoss: its neighbour exchange of text features).
    single = config_for(shards, tmp_path, "single", workers=0, batch_size=64, loss=loss)
    double = config_for(shards, tmp_path, "double", workers=2, batch_size=32, loss=loss)
    fit(single, plan_training(single), "single")
    fit(double, plan_training(double), "double")
    assert losses(single, "single") == pytest.approx(losses(double, "double"), abs=1e-4)
    one = ckpt.load_checkpoint(ckpt.latest_checkpoint(single.output_uri)).weights
    two = ckpt.load_checkpoint(ckpt.latest_checkpoint(double.output_uri)).weights
    start = ckpt.load_checkpoint(ckpt.latest_checkpoint(single.output_uri)).state
    assert start["samples_seen"] == 4 * 64
    for name in one:
        # Adam's first steps move each weight by about lr * sign(grad): allow a couple of such steps where
        # float summation order flips the sign of a near-zero gradient.
        assert torch.allclose(one[name], two[name], atol=5e-4), name


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])  # the field after the state; comm may hold spaces


def _descends_from_this_process(pid: int) -> bool:
    while pid > 1:
        pid = _parent(pid)
        if pid == os.getpid():
            return True
    return False


def _train_workers() -> list[int]:
    """The Ray Train workers of this test session's local Ray (whose raylet this process started): not those of
    another Ray on the machine, such as the cluster tests' that tests/suite.sh runs beside."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"RayTrainWorker" in f.read() and _descends_from_this_process(int(entry)):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def _logged_steps(config: TrainConfig, run_id: str) -> list[int]:
    """The steps the run logged its loss at, in the order they were written (all attempts)."""
    return [s for (s,) in run_query(config.store.results_uri, f"SELECT step FROM train_metrics WHERE run_id = "
                                    f"'{run_id}' AND name = 'loss' ORDER BY time, step").rows]


def test_a_killed_worker_is_replaced_and_resumes_from_the_checkpoint(ray_cluster, shards, tmp_path):
    config = config_for(shards, tmp_path, "recover", workers=2, steps=12, checkpoint_every=4, max_failures=2,
                        shuffle=100)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fit(config, plan_training(config), "recover")
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 400
    while not ckpt.committed_checkpoints(config.output_uri):
        assert thread.is_alive() and time.time() < deadline, failure
        time.sleep(0.2)
    victims = _train_workers()
    assert victims, "no Ray Train worker process found"
    os.kill(victims[0], signal.SIGKILL)
    at_kill = ckpt.load_checkpoint(ckpt.latest_checkpoint(config.output_uri)).state["step"]
    logged_at_kill = _logged_steps(config, "recover")
    assert at_kill < 12 and logged_at_kill[-1] < 12  # the kill came before the end
    thread.join(timeout=600)
    assert not failure, failure
    final = ckpt.load_checkpoint(ckpt.latest_checkpoint(config.output_uri))
    assert final.state["step"] == 12
    # The first attempt logged 1..k; the replacement logged c+1..12 from a checkpoint c >= the one at the kill.
    steps = _logged_steps(config, "recover")
    restart = next((i for i in range(1, len(steps)) if steps[i] <= steps[i - 1]), len(steps))
    first, second = steps[:restart], steps[restart:]
    assert first == list(range(1, len(first) + 1))
    if second:
        assert second == list(range(second[0], 13)) and at_kill < second[0] <= first[-1] + 1
        assert (second[0] - 1) % 4 == 0  # it started right after a checkpoint, not from step 1
    assert len(final.state["ranks"]) == 2  # each rank's RNG and data position
    data = [rank["data"] for rank in final.state["ranks"]]
    assert data[0]["shard_order"] != data[1]["shard_order"]
    # train_workers: a row per worker per attempt, each naming a live Ray node; the second attempt's from_step is
    # the checkpoint it resumed from.
    attempts = run_query(config.store.results_uri, "SELECT from_step, list(rank ORDER BY rank), min(world_size), "
                         "count(DISTINCT node) FILTER (node LIKE '%/%') FROM train_workers GROUP BY from_step "
                         "ORDER BY from_step").rows
    assert attempts[0] == (0, [0, 1], 2, 1) and len(attempts) == 2
    assert attempts[1][:3] == (second[0] - 1 if second else at_kill, [0, 1], 2)


def test_train_clip_flow_records_the_run(prefect_server, shards, tmp_path):
    from clipline.flows.train import train_clip

    config = config_for(shards, tmp_path, "flow", workers=0, steps=3, checkpoint_every=3)
    summary = train_clip(config)
    assert summary["steps"] == 3 and summary["checkpoint"].endswith("step-00000003")
    runs = run_query(config.store.results_uri, "SELECT flow, status FROM runs").rows
    assert runs == [("train_clip", "completed")]
    assert run_query(config.store.results_uri, "SELECT count(*) FROM checkpoints").rows == [(1,)]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
            "training-progress"])))
        reports = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
            "training-report"])))
    assert progress and progress[0].data == 100.0  # the steps done, polled from the store
    assert reports and "final_loss" in reports[0].data  # the markdown summary
