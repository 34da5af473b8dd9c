"""`clipline eval --task captioning` end to end with the nearest-neighbour baseline captioner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from captioning_data import HELD_OUT, untrained_clip, write_captioned_digits
from captioning_reference import clip_benchmark_captioning, clip_benchmark_dir

from clipline.flows.cli import main
from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.eval.datasets import DatasetOptions, load_dataset
from clipline.pipelines.eval.features import embed_images, load_encoder
from clipline.pipelines.shard_format import index_tar, stream_members
from clipline.pipelines.store.query import named_query_sql, run_query
from support.shards import digit_images


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict:
    """An untrained CLIP, its caption bank of 200 training digits, and 60 held-out digits with 4 references each."""
    root = tmp_path_factory.mktemp("captioning")
    clip = untrained_clip(root / "clip")
    train = write_captioned_digits(root / "train" / "00000.tar", 200)
    test = write_captioned_digits(root / "test" / "00000.tar", 60, offset=HELD_OUT, more_references=True)
    bank = str(root / "nearest")
    assert main(["caption-baseline", "--clip", clip, "--data", train, "--out", bank]) == 0
    return {"clip": clip, "train": train, "test": test, "bank": bank}


def _images(shard: str) -> list[bytes]:
    members = [s.images[0] for s in index_tar(shard)]
    found = dict(stream_members(shard, members))
    return [found[m] for m in members]


def test_eval_captioning_stores_metrics_equal_to_clip_benchmarks_on_the_stored_predictions(
        baseline, prefect_server, tmp_path, capsys):
    results = str(tmp_path / "results")
    status = main(["eval", "--checkpoint", baseline["bank"], "--data", baseline["test"], "--task", "captioning",
                   "--method", "greedy", "--json", "--results-uri", results])
    assert status == 0
    (printed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (printed["task"], printed["strategy"], printed["num_samples"]) == ("captioning", "greedy", 60)
    assert {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"} <= set(printed["metrics"])
    assert "spice" in printed["unavailable"]

    stored = dict(run_query(results, "SELECT metric, value FROM eval_results WHERE task = 'captioning'").rows)
    rows = run_query(results, 'SELECT key, caption, "references" FROM predictions WHERE task = \'captioning\' '
                     "ORDER BY key").rows
    assert len(rows) == 60 and all(len(refs) == 4 for _, _, refs in rows)  # key.txt + 3 from key.json
    reference = clip_benchmark_captioning(clip_benchmark_dir(), [c for _, c, _ in rows],
                                          [list(refs) for _, _, refs in rows])["eval"]
    for ours, theirs in {"bleu_1": "Bleu_1", "bleu_4": "Bleu_4", "rouge_l": "ROUGE_L", "cider": "CIDEr"}.items():
        assert stored[ours] == pytest.approx(reference[theirs], abs=1e-6, rel=0), ours
    assert stored["num_samples"] == 60
    board = run_query(results, named_query_sql("leaderboard"))
    row = dict(zip(board.columns, board.rows[0], strict=True))
    assert row["cider"] == pytest.approx(stored["cider"]) and row["bleu_4"] == pytest.approx(stored["bleu_4"])

    # each caption is the first caption of the nearest training image, recomputed here with the CLIP's own towers
    encoder = load_encoder(baseline["clip"])
    train_features = embed_images(encoder, _images(baseline["train"]))
    test_features = embed_images(encoder, _images(baseline["test"]))
    train_captions = [s.texts["txt"] for s in index_tar(baseline["train"])]
    nearest = np.argmax(test_features @ train_features.T, axis=1)
    test_keys = [s.key for s in index_tar(baseline["test"])]
    by_key = {key: caption for key, caption, _ in rows}
    assert [by_key[k] for k in test_keys] == [train_captions[i] for i in nearest]


def test_a_clip_checkpoint_is_not_a_captioner(baseline, prefect_server, tmp_path, capsys):
    status = main(["eval", "--checkpoint", baseline["clip"], "--data", baseline["test"], "--task", "captioning",
                   "--results-uri", str(tmp_path / "results")])
    assert status == 2
    assert "is not a captioner" in capsys.readouterr().err


def test_the_baseline_is_not_a_clip_model(baseline, prefect_server, tmp_path, capsys):
    status = main(["eval", "--checkpoint", baseline["bank"], "--data", baseline["test"], "--task", "zeroshot",
                   "--results-uri", str(tmp_path / "results")])
    assert status == 2
    assert "is a captioner without CLIP towers" in capsys.readouterr().err


def test_references_are_the_txt_lines_then_the_json_captions(tmp_path):
    shard = write_captioned_digits(tmp_path / "00000.tar", 3, offset=HELD_OUT, more_references=True)
    dataset = load_dataset(shard, DatasetOptions(tasks=("captioning",)))
    name = DIGIT_NAMES[int(digit_images()[1][HELD_OUT + 1])]
    assert dataset.captions[1] == (f"the digit {name}", f"a handwritten {name}", f"a photo of the number {name}",
                                   f"a {name} written by hand")
    assert [len(c) for c in dataset.captions] == [4, 4, 4]
