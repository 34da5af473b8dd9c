"""`clipline caption` end to end: the caption_images flow on Prefect, captions printed and in the store."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clipline.flows.cli import main
from clipline.pipelines.config import CaptionConfig
from clipline.pipelines.store.query import run_query

REPO = Path(__file__).resolve().parents[2]


def test_caption_prints_one_json_object_per_sample_and_stores_the_rows(prefect_server, coca_checkpoint,
                                                                       caption_digits, tmp_path, capsys):
    results = str(tmp_path / "results")
    run_folder = str(Path(coca_checkpoint).parents[1])  # a run folder means its latest checkpoint
    status = main(["caption", "--checkpoint", run_folder, "--data", str(caption_digits / "held-out"),
                   "--limit", "12", "--batch-size", "5", "--method", "beam", "--num-beams", "2", "--json",
                   "--results-uri", results])
    assert status == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 12 and all(set(p) == {"key", "url", "caption", "references"} for p in printed)
    assert all(p["caption"] and len(p["references"]) == 1 for p in printed)
    rows = run_query(results, "SELECT key, caption, \"references\", strategy, checkpoint FROM predictions "
                     "WHERE task = 'captioning' ORDER BY key").rows
    assert [(r[0], r[1], r[2]) for r in rows] == [(p["key"], p["caption"], p["references"]) for p in printed]
    assert {(r[3], r[4]) for r in rows} == {("beam-2", coca_checkpoint)}
    assert run_query(results, "SELECT flow, status FROM runs").rows == [("caption_images", "completed")]


def test_caption_prints_a_table(prefect_server, coca_checkpoint, caption_digits, tmp_path, capsys):
    status = main(["caption", "--checkpoint", coca_checkpoint, "--data", str(caption_digits / "held-out"),
                   "--limit", "3", "--method", "greedy", "--results-uri", str(tmp_path / "results")])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "caption", "references"] and lines[-1] == "(3 rows)"


def test_zero_beams_is_refused_before_any_work(caption_digits, tmp_path, capsys):
    status = main(["caption", "--checkpoint", str(tmp_path / "run"), "--data", str(caption_digits / "held-out"),
                   "--method", "beam", "--num-beams", "0", "--results-uri", str(tmp_path / "results")])
    assert status == 2
    assert "error: invalid num_beams: Input should be greater than or equal to 1" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_a_non_captioner_checkpoint_is_refused_with_the_fix(prefect_server, caption_digits, tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 8}}))
    status = main(["caption", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(caption_digits / "held-out"),
                   "--results-uri", str(tmp_path / "results")])
    assert status == 2
    err = capsys.readouterr().err
    assert "is not a captioner checkpoint" in err and "clipline train --kind coca" in err


def test_the_caption_deployment_parameters_are_a_valid_config():
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    (caption,) = [d for d in deployments if d["entrypoint"] == "clipline.flows.caption:caption_images"]
    config = CaptionConfig.model_validate(caption["parameters"]["config"])
    assert config.generate.method == "beam" and config.generate.num_beams == 3
