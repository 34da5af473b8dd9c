"""`clipline distance` end to end: image and video shards -> W1 in CLIP image and fastText caption spaces."""

from __future__ import annotations

import json

import pytest

from clipline.flows.cli import main
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.store.query import named_query_sql, run_query
from clipline.pipelines.train.checkpoint import save_checkpoint
from support.frame_shards import write_clip_shard
from support.shards import write_digit_shards

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """An untrained clipline-tiny checkpoint: random features still tell digits from street scenes."""
    built = build_model("clipline-tiny", augment=False)
    config = {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}
    return save_checkpoint(str(tmp_path_factory.mktemp("distance-flow") / "run"), 1, built.model, config,
                           {"step": 1})


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, str]:
    """Two disjoint sets of 60 digits (one distribution) and 30 four-frame clips of a bike ride."""
    root = tmp_path_factory.mktemp("distance-data")
    write_digit_shards(root / "digits_a", num_shards=2, per_shard=30)
    write_digit_shards(root / "digits_b", num_shards=2, per_shard=30, offset=2000)
    write_clip_shard(root / "bikes", "bikes", num_clips=30, frames_per_clip=4, caption="cyclists ride bikes down a "
                     "city street")
    return {"digits_a": str(root / "digits_a"), "digits_b": str(root / "digits_b" / "{00000..00001}.tar"),
            "bikes": str(root / "bikes" / "00000.tar")}


def _excess(rows: list[tuple], a: str, b: str) -> float:
    return next(excess for x, y, excess in rows if {x, y} == {a, b})


def test_distances_in_both_spaces_land_in_the_store_with_self_baselines(prefect_server, ray_cluster, checkpoint,
                                                                        datasets, tmp_path, capsys):
    results, out = str(tmp_path / "results"), tmp_path / "heatmaps"
    status = main(["distance", "--datasets", *(f"{k}={v}" for k, v in datasets.items()), "--image-encoder",
                   checkpoint, "--frames-per-video", "2", "--workers", "2", "--method", "exact", "--bootstrap", "3",
                   "--out", str(out), "--results-uri", results, "--json"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"]["bikes"] == {"items": 30, "available": 30, "images": 60}
    assert result["text_model"] == {"model": "trained on the captions", "trained": True}
    for space, n in [("clip_image", 30), ("fasttext_text", 15)]:  # bikes: 60 frames, but 30 captions
        rows = run_query(results, f"SELECT dataset_a, dataset_b, excess, num_samples, ci_low < ci_high "
                                  f"FROM dataset_distances WHERE space = '{space}'").rows
        assert len(rows) == 6  # 3 self baselines + 3 pairs
        assert {r[3] for r in rows} == {n}  # one n for every pair: half the smallest, the rest for the baseline
        triples = [r[:3] for r in rows]
        assert _excess(triples, "digits_a", "digits_b") < 0.5 * _excess(triples, "digits_a", "bikes")
        assert all(r[4] for r in rows if r[0] != r[1])
    assert sorted(p.name for p in out.iterdir()) == ["clip_image_excess.png", "clip_image_w1.png",
                                                     "fasttext_text_excess.png", "fasttext_text_w1.png"]
    words = run_query(results, "SELECT dataset, word FROM dataset_words WHERE rank = 1 ORDER BY dataset").rows
    assert dict(words)["digits_a"] == "handwritten"
    assert run_query(results, "SELECT flow, status FROM runs").rows == [("dataset_distance", "completed")]
    assert len(run_query(results, named_query_sql("distances")).rows) == 12


def test_a_given_fasttext_model_compares_captions_only(prefect_server, datasets, tmp_path, capsys):
    from gensim.test.utils import datapath

    results = str(tmp_path / "results")
    status = main(["distance", "--datasets", f"a={datasets['digits_a']}", f"b={datasets['bikes']}", "--space",
                   "fasttext_text", "--text-model", datapath("lee_fasttext_new.bin"), "--top-words", "0",
                   "--results-uri", results])
    assert status == 0
    assert "heatmaps:" in capsys.readouterr().out
    assert run_query(results, "SELECT DISTINCT space FROM dataset_distances").rows == [("fasttext_text",)]
    assert run_query(results, "SELECT count(*) FROM dataset_words").rows == [(0,)]


@pytest.mark.parametrize("args, message", [
    (["--datasets", "a=/no/such/shards/{0..1}.tar", "b=/no/such/other.tar", "--space", "fasttext_text"],
     "shards do not exist"),
    (["--datasets", "a=x.tar", "b=y.tar"], "needs --image-encoder"),
    (["--datasets", "a=x.tar", "a=y.tar", "--space", "fasttext_text"], "given twice"),
    (["--datasets", "just-a-path.tar", "b=y.tar", "--space", "fasttext_text"], "is not NAME=SHARDS"),
])
def test_bad_input_is_an_error_naming_it_before_any_work(prefect_server, tmp_path, capsys, args, message):
    results = tmp_path / "results"
    assert main(["distance", *args, "--results-uri", str(results)]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # Prefect logs the failed task above it
    assert last_line.startswith("error: ") and message in last_line
    assert not results.exists() or not list(results.glob("dataset_distances/*"))
