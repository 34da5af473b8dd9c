"""Whole evaluations with a tiny trained checkpoint: features, tasks, strategies, results store, plots."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from eval_data import TEMPLATES, write_class_folders, write_clip_benchmark
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.config import EvalConfig, FetchConfig, StoreConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval import context
from clipline.pipelines.eval.checkpoints import resolve_checkpoint
from clipline.pipelines.eval.features import decode_image, embed_images, load_encoder
from clipline.pipelines.eval.runner import evaluate_all, plan_evaluation
from clipline.pipelines.store.query import named_query_sql, run_query
from clipline.pipelines.train import checkpoint as ckpt


def eval_config(tmp_path: Path, checkpoint: str, datasets: list[str], **overrides) -> EvalConfig:
    return EvalConfig(checkpoints=[checkpoint], datasets=datasets,
                      store=StoreConfig(results_uri=str(tmp_path / "results")), **overrides)


TEST_SERVER_ONLY = FetchConfig(allowed_networks=["127.0.0.1/32"], max_bytes=10 * 2**20, timeout_s=5, retries=0)


@pytest.fixture
def embed_calls(monkeypatch) -> list[int]:
    """How many images each image-embedding pass of an evaluation saw."""
    calls: list[int] = []

    def counting(encoder, images, batch_size):
        features = embed_images(encoder, images, batch_size)
        calls.append(len(features))
        return features

    monkeypatch.setattr(context, "embed_images", counting)
    return calls


def run(config: EvalConfig, run_id: str = "run-1"):
    return evaluate_all(plan_evaluation(config), config, run_id)


def test_every_task_and_strategy_comes_from_one_image_pass_and_lands_in_the_store(
        trained_checkpoint, digits_120, tmp_path, embed_calls):
    root = write_clip_benchmark(tmp_path / "cb", *digits_120)
    config = eval_config(tmp_path, trained_checkpoint, [str(root)], tasks=["zeroshot", "retrieval", "linear-probe"],
                         strategy="all")
    results = run(config)
    assert embed_calls == [120]
    assert [(r.task, r.strategy) for r in results] == [("zeroshot", "single"), ("zeroshot", "ensemble"),
                                                       ("zeroshot", "vote"), ("retrieval", None),
                                                       ("linear-probe", None)]
    assert set(results[0].metrics) == {"acc1", "acc5", "mean_per_class_recall"}
    assert len(results[3].metrics) == 6 and results[4].num_samples == 36  # 30% of 120, stratified
    assert all(0 <= v <= 1 for r in results for v in r.metrics.values())
    store = config.store.results_uri
    assert run_query(store, "SELECT count(*) FROM predictions").rows == [(3 * 120 + 120 + 36,)]
    stored = dict(run_query(store, "SELECT metric, value FROM eval_results WHERE strategy = 'vote'").rows)
    assert stored == {**results[2].metrics, "num_samples": 120, "skipped_images": 0}
    assert len(run_query(store, named_query_sql("leaderboard")).rows) == 5
    assert len(run_query(store, named_query_sql("per_class_accuracy")).rows) == 3 * 10 + 10
    for name in ("confusion", "hardest_samples"):
        assert run_query(store, named_query_sql(name)).rows
    plots = [r.plot_uri for r in results if r.plot_uri]
    assert len(plots) == 3 and all(storage.read_bytes(p).startswith(b"\x89PNG") for p in plots)
    assert plots[0].startswith(str(tmp_path / "plots" / "run-1"))


def test_a_folder_and_the_clip_benchmark_layout_give_the_same_numbers(trained_checkpoint, digits_120, tmp_path):
    # Zero-shot scores each image alone, so the order the layouts list images in cannot matter (a linear
    # probe's split does depend on it).
    images, labels = digits_120
    folder = write_class_folders(tmp_path / "folder", images, labels)
    root = write_clip_benchmark(tmp_path / "cb", images, labels)
    (tmp_path / "templates.txt").write_text("\n".join(TEMPLATES))
    (tmp_path / "names.txt").write_text((root / "classnames.txt").read_text())
    config = eval_config(tmp_path, trained_checkpoint, [str(root), str(folder)], strategy="all",
                         templates_uri=str(tmp_path / "templates.txt"), classnames_uri=str(tmp_path / "names.txt"))
    results = run(config)
    by_layout = [results[:3], results[3:]]
    assert [r.metrics for r in by_layout[0]] == [r.metrics for r in by_layout[1]]
    assert by_layout[0][0].metrics != by_layout[0][1].metrics  # strategies do differ here


def test_unreadable_images_are_skipped_and_counted(trained_checkpoint, digits_120, tmp_path):
    images, labels = digits_120
    folder = write_class_folders(tmp_path / "folder", images[:40], labels[:40])
    (folder / "seven" / "broken.png").write_bytes(b"\x89PNG but not really")
    (folder / "one" / "empty.jpg").write_bytes(b"")
    config = eval_config(tmp_path, trained_checkpoint, [str(folder)])
    [result] = run(config)
    assert (result.num_samples, result.num_skipped) == (40, 2)
    assert run_query(config.store.results_uri, "SELECT value FROM eval_results WHERE metric = 'skipped_images'"
                     ).rows == [(2.0,)]


def test_a_checkpoint_that_does_not_load_fails_before_any_embedding(trained_checkpoint, digits_120, tmp_path,
                                                                    embed_calls):
    root = write_clip_benchmark(tmp_path / "cb", *digits_120)
    broken = tmp_path / "run" / "checkpoints" / "step-00000001"
    shutil.copytree(trained_checkpoint, broken)
    weights = broken / ckpt.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ClipLineError, match=f"checkpoint {broken} does not load"):
        plan_evaluation(eval_config(tmp_path, str(broken), [str(root)]))
    with pytest.raises(ClipLineError, match="not found"):
        plan_evaluation(eval_config(tmp_path, str(tmp_path / "nothing-here"), [str(root)]))
    with pytest.raises(ClipLineError, match="without weights"):
        plan_evaluation(eval_config(tmp_path, "clipline-tiny", [str(root)]))
    assert embed_calls == []


def test_every_checkpoint_form_names_the_same_weights(trained_checkpoint, digits_120):
    run_folder = str(Path(trained_checkpoint).parents[1])
    assert resolve_checkpoint(run_folder).uri == trained_checkpoint
    images = [decode_image(data) for data in digits_120[0][:16]]
    expected = embed_images(load_encoder(trained_checkpoint), images)
    for spec, pretrained in [(f"local-dir:{trained_checkpoint}", None),
                             ("clipline-tiny", f"{trained_checkpoint}/{ckpt.WEIGHTS}")]:
        assert np.array_equal(embed_images(load_encoder(spec, pretrained), images), expected), spec


def test_embed_images_takes_pil_images_or_bytes_and_returns_unit_float32_rows(trained_checkpoint, digits_120):
    encoder = load_encoder(trained_checkpoint)
    data = digits_120[0][:20]
    from_bytes = embed_images(encoder, iter(data), batch_size=64)
    from_pil = embed_images(encoder, (Image.open(io.BytesIO(d)) for d in data), batch_size=7)
    assert from_bytes.dtype == np.float32 and from_bytes.shape == (20, encoder.embed_dim)
    assert np.linalg.norm(from_bytes, axis=1) == pytest.approx(1, abs=1e-5)
    assert from_pil == pytest.approx(from_bytes, abs=1e-5)


def test_a_linear_probe_trains_on_the_layouts_own_training_split(trained_checkpoint, digits_120, tmp_path,
                                                                   embed_calls):
    images, labels = digits_120
    root = write_clip_benchmark(tmp_path / "cb", images[:50], labels[:50])
    write_clip_benchmark(root, images[50:], labels[50:], split="train")
    [result] = run(eval_config(tmp_path, trained_checkpoint, [str(root)], tasks=["linear-probe"]))
    assert result.num_samples == 50 and sorted(embed_calls) == [50, 70]


def test_a_csv_mixes_local_paths_and_urls_and_a_failed_download_is_skipped(trained_checkpoint, digits_120,
                                                                          http_server, tmp_path):
    (tmp_path / "digit.png").write_bytes(digits_120[0][0])
    rows = [f"{http_server.url('/img/astronaut.jpg')},photo", f"{http_server.url('/404')},photo", "digit.png,digit"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    [result] = run(eval_config(tmp_path, trained_checkpoint, [str(tmp_path / "list.csv")], fetch=TEST_SERVER_ONLY))
    assert (result.num_samples, result.num_skipped) == (2, 1)
    assert "acc5" not in result.metrics  # two classes


def test_csv_urls_go_through_the_crawlers_guard_and_size_cap(trained_checkpoint, http_server, trap, tmp_path,
                                                             caplog):
    rows = [f"{http_server.url('/img/astronaut.jpg')},photo", f"{http_server.url('/img/coffee.jpg')},cup",
            f"{http_server.url(f'/redirect-to?url={trap.url()}')},photo", f"{trap.url()},cup",
            f"{http_server.url('/huge.jpg')},photo"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    before = trap.connections
    [result] = run(eval_config(tmp_path, trained_checkpoint, [str(tmp_path / "list.csv")], fetch=TEST_SERVER_ONLY))
    assert (result.num_samples, result.num_skipped) == (2, 3)
    assert trap.connections == before  # refused before connecting, redirect included
    warnings = caplog.text
    assert warnings.count("private address refused: 127.0.0.2 (loopback)") == 2
    assert f"too large: Content-Length 12582912 bytes exceeds max_bytes {TEST_SERVER_ONLY.max_bytes}" in warnings
