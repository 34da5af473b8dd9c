"""Tiny real training runs in Ray Train's local mode (the loop runs in this process)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
import time

import open_clip
import pytest
import torch

from clipline.pipelines.config import StoreConfig, TrainConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.query import run_query
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.trainer import fit, plan_training


def train_config(digits, tmp_path, **overrides) -> TrainConfig:
    settings = dict(data=str(digits / "train" / "{00000..00003}.tar"), output_uri=str(tmp_path / "run"),
                    steps=24, batch_size=32, lr=5e-4, warmup=3, workers=0, log_every=4, checkpoint_every=12,
                    data_workers=1, store=StoreConfig(results_uri=str(tmp_path / "results")))
    return TrainConfig(**{**settings, **overrides})


def metric(config: TrainConfig, name: str) -> list[tuple[int, float]]:
    return run_query(config.store.results_uri,
                     f"SELECT step, value FROM train_metrics WHERE name = '{name}' ORDER BY step").rows


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    config = train_config(digits, tmp_path_factory.mktemp("trained"),
                          val_data=str(digits / "val" / "00000.tar"), val_batches=2)
    summary = fit(config, plan_training(config), "unit-run")
    return config, summary


def test_loss_falls(trained):
    config, summary = trained
    losses = [v for _, v in metric(config, "loss")]
    assert len(losses) == 7  # step 1, then every 4 steps
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.1, losses


def test_every_metric_is_logged(trained):
    config, summary = trained
    names = {r[0] for r in run_query(config.store.results_uri, "SELECT DISTINCT name FROM train_metrics").rows}
    assert {"loss", "lr", "logit_scale", "samples_per_s", "data_time_s", "skipped_samples", "epoch",
            "val_loss", "val_image_to_text_r1", "val_text_to_image_r1"} <= names
    assert summary["steps"] == 24 and summary["checkpoint"].endswith("step-00000024")
    steps = run_query(config.store.results_uri, "SELECT step FROM checkpoints ORDER BY step").rows
    assert steps == [(12,), (24,)]


def test_checkpoint_loads_through_open_clip_local_dir(trained):
    config, summary = trained
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{summary['checkpoint']}")
    saved = ckpt.load_checkpoint(summary["checkpoint"])
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved.weights[name]), name
    tokenizer = open_clip.get_tokenizer(f"local-dir:{summary['checkpoint']}")
    assert tokenizer(["a handwritten seven"]).shape == (1, 32)
    assert saved.state["step"] == 24 and saved.state["samples_seen"] == 24 * 32


def test_training_state_loads_with_weights_only(trained):
    config, summary = trained
    state = torch.load(f"{summary['checkpoint']}/{ckpt.STATE}", weights_only=True)
    assert {"optimizer", "step", "samples_seen", "epoch", "run_id", "ranks", "config"} <= set(state)
    assert {"rng", "data"} <= set(state["ranks"][0]) and state["run_id"] == "unit-run"


def test_existing_checkpoints_need_resume(trained):
    config, _ = trained
    with pytest.raises(ClipLineError, match="already holds checkpoints"):
        plan_training(config)


def test_missing_shards_fail_before_training(digits, tmp_path):
    with pytest.raises(ClipLineError, match="2 of 6 shards do not exist"):
        plan_training(train_config(digits, tmp_path, data=str(digits / "train" / "{00000..00005}.tar")))


def test_unknown_model_fails_before_training(digits, tmp_path):
    with pytest.raises(ClipLineError, match="unknown model 'no-such-model'"):
        plan_training(train_config(digits, tmp_path, model="no-such-model"))


def test_epochs_use_sizes_json(digits, tmp_path):
    assert plan_training(train_config(digits, tmp_path, steps=None, epochs=2)).total_steps == 2 * (4 * 96 // 32)


RECORDING = textwrap.dedent("""
    import json
    from clipline.pipelines.train import loop

    def record_keys(path):
        # Every batch the loop takes, as the keys of its samples, one JSON line per batch.
        original = loop.endless_batches

        def recorded(*args, **kwargs):
            with open(path, "a") as out:
                for epoch, batch in original(*args, **kwargs):
                    out.write(json.dumps(list(batch.keys)) + "\\n")
                    out.flush()
                    yield epoch, batch

        loop.endless_batches = recorded
""")

KILLED_RUN = RECORDING + textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from clipline.pipelines.config import TrainConfig
    from clipline.pipelines.train.trainer import fit, plan_training

    config, keys, stall_at = TrainConfig.model_validate_json(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    record_keys(keys)
    checkpoint = loop._checkpoint

    def stall_after(kind, config, model, optimizer, progress, *rest):
        checkpoint(kind, config, model, optimizer, progress, *rest)
        if progress.step == stall_at:  # wait to be killed, mid-epoch, right after a checkpoint
            Path(keys + ".stalled").write_text(str(progress.step))
            time.sleep(3600)

    loop._checkpoint = stall_after
    fit(config, plan_training(config), "killed-run")
""")

RESUME_SETTINGS = dict(steps=16, checkpoint_every=4, log_every=1, data_workers=2, shuffle=50, augment=True)


def _keys_by_step(path) -> list[list[str]]:
    return [json.loads(line) for line in open(path)]


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    """16 steps (an epoch is 12) with augmentation, two DataLoader streams and shuffling, never stopped."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    config = train_config(digits, folder, **RESUME_SETTINGS)
    namespace: dict = {}
    exec(RECORDING, namespace)
    from clipline.pipelines.train import loop

    original = loop.endless_batches
    try:
        namespace["record_keys"](str(folder / "keys.jsonl"))
        fit(config, plan_training(config), "uninterrupted")
    finally:
        loop.endless_batches = original
    return config, _keys_by_step(folder / "keys.jsonl")


def _stalled_run(config: TrainConfig, keys, stall_at: int) -> None:
    """Run in a subprocess that stalls right after checkpoint `stall_at`, and SIGKILL it there."""
    victim = subprocess.Popen([sys.executable, "-c", KILLED_RUN, config.model_dump_json(), str(keys),
                               str(stall_at)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stalled = keys.with_name(keys.name + ".stalled")
    deadline = time.time() + 400
    while not stalled.exists():
        assert victim.poll() is None, victim.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.1)
    victim.kill()
    victim.wait()


def test_a_run_killed_mid_epoch_resumes_exactly_where_it_stopped(digits, tmp_path, uninterrupted, monkeypatch):
    reference, reference_keys = uninterrupted
    config = train_config(digits, tmp_path, **RESUME_SETTINGS)
    keys = tmp_path / "keys.jsonl"
    _stalled_run(config, keys, stall_at=8)
    assert [s for s, _ in metric(config, "loss")] == list(range(1, 9))  # the kill came before the end
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(config.output_uri)).state["step"] == 8
    taken_before = len(_keys_by_step(keys))  # the stalled worker's loader may have taken no more than 8 steps

    resumed = config.model_copy(update={"resume": "latest"})
    plan = plan_training(resumed)
    assert plan.resumed_run_id == "killed-run" and plan.resume_from.endswith("step-00000008")
    namespace: dict = {}
    exec(RECORDING, namespace)
    from clipline.pipelines.train import loop

    monkeypatch.setattr(loop, "endless_batches", loop.endless_batches)  # restored after the test
    namespace["record_keys"](str(tmp_path / "resumed.jsonl"))
    fit(resumed, plan, "killed-run")

    # The resumed attempt logged steps 9..16 only: none twice for the run.
    assert [s for s, _ in metric(config, "loss")] == list(range(1, 17))
    recorded = run_query(config.store.results_uri, "SELECT step, samples_seen FROM checkpoints ORDER BY step").rows
    assert recorded == [(s, s * 32) for s in (4, 8, 12, 16)]
    # It saw exactly the samples of the uninterrupted run, mid-epoch 1 and on into epoch 2 ...
    assert taken_before == 8 and _keys_by_step(keys)[:8] == reference_keys[:8]
    assert _keys_by_step(tmp_path / "resumed.jsonl") == reference_keys[8:16]
    # ... from the checkpoint's weights, optimizer and RNG states (augmentation included): the same losses.
    assert [v for _, v in metric(config, "loss")] == pytest.approx([v for _, v in metric(reference, "loss")],
                                                                  abs=1e-5)
    final = ckpt.load_checkpoint(ckpt.latest_checkpoint(config.output_uri))
    expected = ckpt.load_checkpoint(ckpt.latest_checkpoint(reference.output_uri))
    assert final.state["step"] == 16 and final.state["run_id"] == "killed-run"
    moments, reference_moments = final.state["optimizer"]["state"], expected.state["optimizer"]["state"]
    for index, state in moments.items():
        assert int(state["step"]) == 16
        assert torch.allclose(state["exp_avg_sq"], reference_moments[index]["exp_avg_sq"], atol=1e-8), index
    for name, tensor in final.weights.items():
        assert torch.allclose(tensor, expected.weights[name], atol=1e-5), name
    lrs = dict(metric(config, "lr"))
    assert lrs[16] == pytest.approx(5e-4 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 12 / 13)).item()))


def test_an_explicit_resume_path_is_honoured_though_a_newer_checkpoint_exists(digits, tmp_path, uninterrupted):
    reference, _ = uninterrupted
    step_8 = ckpt.checkpoint_uri(reference.output_uri, 8)  # the reference run went on to step 16
    config = train_config(digits, tmp_path, **{**RESUME_SETTINGS, "steps": 10, "resume": step_8})
    fit(config, plan_training(config), "from-step-8")
    assert [s for s, _ in metric(config, "loss")] == [9, 10]
    assert [v for _, v in metric(config, "loss")] == pytest.approx(
        [v for s, v in metric(reference, "loss") if s in (9, 10)], abs=0.05)  # another schedule: 10 steps


def test_an_explicit_resume_path_beside_newer_checkpoints_of_the_run_is_refused(digits, uninterrupted):
    reference, _ = uninterrupted
    config = reference.model_copy(update={"resume": ckpt.checkpoint_uri(reference.output_uri, 8)})
    with pytest.raises(ClipLineError, match="conflicts with .*step-00000016"):
        plan_training(config)


def test_resuming_with_other_data_options_is_refused(uninterrupted):
    reference, _ = uninterrupted
    config = reference.model_copy(update={"resume": "latest", "seed": 1, "data_workers": 1})
    with pytest.raises(ClipLineError, match="saved with other data_workers, seed"):
        plan_training(config)


def _corrupt_copy(source: str, target: str) -> None:
    """A copy of a shard whose first image is garbage and whose tar is cut off mid-way."""
    with tarfile.open(source) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for i, (member, data) in enumerate(members):
            data = b"not a png" if i == 0 else data
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    raw = buffer.getvalue()
    with open(target, "wb") as f:
        f.write(raw[: len(raw) * 2 // 3])


def test_corrupt_image_and_truncated_shard_are_skipped_and_counted(digits, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    _corrupt_copy(str(digits / "train" / "00000.tar"), str(bad / "00000.tar"))
    config = train_config(digits, tmp_path, steps=6, checkpoint_every=6, log_every=2, shuffle=0,
                          data=f"{bad}/00000.tar::{digits}/train/{{00001..00003}}.tar")
    summary = fit(config, plan_training(config), "skips")
    assert summary["steps"] == 6
    assert metric(config, "skipped_samples")[-1][1] >= 2  # the garbage image and the broken tar


def test_unreadable_shard_list_is_a_clear_error(tmp_path, digits):
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file" * 100)
    config = train_config(digits, tmp_path, data=str(tmp_path / "junk.tar"))
    with pytest.raises(Exception, match="no batch of 32 readable samples"):
        fit(config, plan_training(config), "junk")


def test_resampled_unreadable_shards_stop_with_a_clear_error(tmp_path, digits):
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file" * 100)
    config = train_config(digits, tmp_path, data=str(tmp_path / "junk.tar"), resampled=True, data_workers=0)
    with pytest.raises(Exception, match="unreadable samples or shards in a row"):
        fit(config, plan_training(config), "junk-resampled")


def test_relative_paths_are_made_absolute_before_workers_change_directory(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(data="shards/{0..1}.tar::s3://bucket/x.tar", output_uri="run", steps=1,
                         init="ckpt", resume="older/step-1", val_data="val.tar",
                         store=StoreConfig(results_uri="results"))
    assert config.data == f"{tmp_path}/shards/{{0..1}}.tar::s3://bucket/x.tar"
    assert (config.output_uri, config.init, config.resume) == (f"{tmp_path}/run", f"{tmp_path}/ckpt",
                                                               f"{tmp_path}/older/step-1")
    assert (config.val_data, config.store.results_uri) == (f"{tmp_path}/val.tar", f"{tmp_path}/results")
    assert TrainConfig(data="a.tar", output_uri="s3://b/run", steps=1, resume="latest").resume == "latest"


def test_locked_image_tower_stays_fixed(trained, digits, tmp_path):
    _, summary = trained
    config = train_config(digits, tmp_path, steps=3, lock_image=True, init=summary["checkpoint"], checkpoint_every=3)
    result = fit(config, plan_training(config), "lit")
    before = ckpt.load_checkpoint(summary["checkpoint"]).weights
    after = ckpt.load_checkpoint(result["checkpoint"]).weights
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("visual."))
    assert not torch.equal(before["text_projection"], after["text_projection"])


def test_lit_unlocked_groups_leave_the_last_image_groups_trainable(trained, digits, tmp_path):
    from clipline.pipelines.train.kinds import ImageText

    _, summary = trained
    config = train_config(digits, tmp_path, lock_image=True, init=summary["checkpoint"],
                          lock_image_unlocked_groups=1)
    trainable = {name for name, p in ImageText().build(config).model.named_parameters() if p.requires_grad}
    assert "visual.proj" in trainable  # open_clip's last group of the ViT: the projection
    assert not any(name.startswith(("visual.conv1", "visual.transformer.")) for name in trainable)
    assert "text_projection" in trainable
