"""`clipline eval` end to end: the evaluate flow on Prefect, pairs on Ray workers, results in the store."""

from __future__ import annotations

import json

import pytest

from clipline.flows.cli import main
from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.store.query import named_query_sql, run_query
from clipline.pipelines.train.checkpoint import save_checkpoint
from support.shards import digit_images, png, write_digit_shards

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """An untrained clipline-tiny checkpoint: the flow's plumbing does not need a good model."""
    built = build_model("clipline-tiny", augment=False)
    config = {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}
    return save_checkpoint(str(tmp_path_factory.mktemp("eval-flow") / "run"), 1, built.model, config, {"step": 1})


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> list[str]:
    """64 digits as clipline shards (with classnames.txt) and 60 others as a folder per class."""
    root = tmp_path_factory.mktemp("eval-flow-data")
    write_digit_shards(root / "shards", num_shards=1, per_shard=64)
    (root / "shards" / "classnames.txt").write_text("\n".join(DIGIT_NAMES))
    images, labels = digit_images()
    for i in range(200, 260):
        folder = root / "folder" / DIGIT_NAMES[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(png(images[i]))
    return [str(root / "shards"), str(root / "folder")]


def test_eval_prints_one_json_object_per_evaluation_and_records_the_run(prefect_server, ray_cluster, checkpoint,
                                                                        datasets, tmp_path, capsys):
    results = str(tmp_path / "results")
    status = main(["eval", "--checkpoint", checkpoint, "--data", *datasets, "--task", "zeroshot", "linear-probe",
                   "--strategy", "all", "--workers", "2", "--json", "--results-uri", results])
    assert status == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["dataset"], r["task"], r["strategy"]) for r in printed] == [
        (dataset, task, strategy) for dataset in datasets
        for task, strategy in [("zeroshot", "single"), ("zeroshot", "ensemble"), ("zeroshot", "vote"),
                               ("linear-probe", None)]]
    assert printed[0]["num_samples"] == 64 and set(printed[0]["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}
    assert run_query(results, "SELECT flow, status FROM runs").rows == [("evaluate", "completed")]
    assert len(run_query(results, named_query_sql("leaderboard")).rows) == 8
    assert run_query(results, "SELECT count(*) FROM predictions").rows == [(3 * 64 + 3 * 60 + 20 + 18,)]
    assert (tmp_path / "plots").is_dir()


def test_bad_input_exits_with_a_one_line_error(prefect_server, datasets, tmp_path, capsys):
    status = main(["eval", "--checkpoint", str(tmp_path / "no-such-run"), "--data", *datasets,
                   "--results-uri", str(tmp_path / "results")])
    assert status == 2
    assert f"error: checkpoint {tmp_path / 'no-such-run'} not found" in capsys.readouterr().err
