"""`clipline curate` end to end: Ray tasks score the shards, the flow filters, dedups and decontaminates, the
curated shards train, and the funnel is in the store."""

from __future__ import annotations

import json

import pytest

from clipline.flows.cli import main
from clipline.pipelines.data.loader import dataset_size, shard_uris
from clipline.pipelines.store.query import named_query_sql, run_query
from support.curation import save_untrained
from support.shards import write_digit_shards

pytestmark = pytest.mark.e2e


def test_curate_scores_on_ray_and_writes_shards_the_funnel_and_the_run(prefect_server, ray_cluster, tmp_path,
                                                                        capsys):
    write_digit_shards(tmp_path / "data", num_shards=3, per_shard=20)
    write_digit_shards(tmp_path / "held-out", num_shards=1, per_shard=10)  # the first 10 digits of the data
    checkpoint = save_untrained(tmp_path / "run")
    results = str(tmp_path / "results")

    status = main(["curate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "curated"), "--scorer",
                   checkpoint, "--clip-score-top-fraction", "0.9", "--dedup", "phash", "--decontaminate",
                   f"digits={tmp_path / 'held-out'}", "--samples-per-shard", "16", "--workers", "2",
                   "--scores-uri", str(tmp_path / "scores"), "--results-uri", results, "--json"])

    assert status == 0
    result = json.loads(capsys.readouterr().out)
    by_name = {f["filter"]: f for f in result["filters"]}
    assert by_name["decontaminate"]["removed_alone"] == 10  # every planted eval image, and only those
    assert result["total"] == 60 and 0 < result["kept"] <= 60 - 10
    uris = shard_uris(str(tmp_path / "curated"))
    assert dataset_size(uris) == result["kept"] and len(uris) == -(-result["kept"] // 16)
    assert len(list((tmp_path / "scores").rglob("*.parquet"))) == 4  # 3 shards + the eval shard, one Ray task each
    funnel = run_query(results, named_query_sql("curation_funnel")).rows
    assert [row[1] for row in funnel] == ["input", "clip_score_top_fraction", "dedup", "decontaminate", "kept"]
    assert funnel[-1][5] == result["kept"] and funnel[-1][6] == result["digest"]
    assert run_query(results, "SELECT flow, status FROM runs").rows == [("curate", "completed")]


def test_curate_refuses_a_filter_that_keeps_nothing_by_name(prefect_server, tmp_path, capsys):
    write_digit_shards(tmp_path / "data", num_shards=1, per_shard=5)
    status = main(["curate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "curated"),
                   "--min-caption-words", "50", "--scores-uri", str(tmp_path / "scores"),
                   "--results-uri", str(tmp_path / "results")])
    assert status == 2
    assert "filter min_caption_words (caption under 50 words) keeps none of the 5 samples" in capsys.readouterr().err
