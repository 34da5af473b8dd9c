"""Filters as an intersection, the funnel counts, and the bad inputs refused before work."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from clipline.pipelines.curate.run import curate
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.store.query import named_query_sql, run_query
from support.curation import encode, write_json_shard, write_shard


def _image(width: int, height: int, shade: int) -> bytes:
    return encode(Image.linear_gradient("L").rotate(shade).resize((width, height)).convert("RGB"))


@pytest.fixture
def sized_shard(tmp_path) -> str:
    """8 samples: (original size in their json, caption) chosen so each filter removes a known set."""
    specs = [  # key, original w x h, caption
        ("k0", 400, 300, "a long enough caption here"),   # kept
        ("k1", 40, 30, "a long enough caption here"),     # small
        ("k2", 900, 100, "a long enough caption here"),   # wide
        ("k3", 400, 400, "short"),                        # short caption
        ("k4", 50, 500, "short"),                         # small, tall, short
        ("k5", 300, 300, "another caption that is long"),  # kept
        ("k6", 60, 64, "tiny and short"),                 # small only
        ("k7", 640, 480, "x y"),                          # short only
    ]
    samples = [(key, _image(64, 48, 10 * i), caption, {"original_width": w, "original_height": h})
               for i, (key, w, h, caption) in enumerate(specs)]
    return write_json_shard(tmp_path / "data" / "00000.tar", samples)


def test_funnel_counts_what_each_filter_removes_alone_and_beyond_the_others(sized_shard, tmp_path, config_for):
    config = config_for(str(tmp_path / "data"), min_caption_words=4, min_image_size=100, max_aspect_ratio=3)
    result = curate(config, run_id="r1")

    by_name = {f["filter"]: f for f in result.filters}
    assert by_name["min_caption_words"]["removed_alone"] == 4  # k3 k4 k6 k7
    assert by_name["min_image_size"]["removed_alone"] == 3  # k1 k4 k6
    assert by_name["max_aspect_ratio"]["removed_alone"] == 2  # k2 k4
    assert by_name["min_caption_words"]["removed_beyond_others"] == 2  # k3 k7
    assert by_name["min_image_size"]["removed_beyond_others"] == 1  # k1 (k6 is also short)
    assert by_name["max_aspect_ratio"]["removed_beyond_others"] == 1  # k2
    assert (result.total, result.kept) == (8, 2)
    assert json.loads((tmp_path / "out" / "sizes.json").read_text()) == {"00000.tar": 2}
    funnel = run_query(config.store.results_uri, named_query_sql("curation_funnel")).rows
    assert [(row[1], row[5]) for row in funnel] == [("input", 8), ("min_caption_words", 4), ("min_image_size", 3),
                                                   ("max_aspect_ratio", 2), ("kept", 2)]
    assert funnel[-1][6] == result.digest


def test_a_filter_that_keeps_nothing_is_named_unless_empty_is_allowed(sized_shard, tmp_path, config_for):
    with pytest.raises(ClipLineError, match="filter min_image_size .* keeps none of the 8"):
        curate(config_for(str(tmp_path / "data"), min_image_size=10_000))
    assert not (tmp_path / "out" / "kept_keys.parquet").exists()
    result = curate(config_for(str(tmp_path / "data"), min_image_size=10_000, allow_empty=True))
    assert result.kept == 0 and result.shards == []


def test_caption_filters_are_refused_by_name_on_shards_without_captions(tmp_path, config_for):
    write_shard(tmp_path / "data" / "00000.tar", [(f"k{i}", _image(32, 32, i), None) for i in range(4)])
    with pytest.raises(ClipLineError, match="no captions .* min_caption_words cannot run"):
        curate(config_for(str(tmp_path / "data"), min_caption_words=2, max_aspect_ratio=2))
    assert not (tmp_path / "scores").exists()  # refused before any shard was scored
    assert curate(config_for(str(tmp_path / "data"), max_aspect_ratio=2)).kept == 4


def test_clip_filters_without_a_scorer_are_a_config_error(tmp_path, config_for):
    with pytest.raises(ValueError, match="--clip-score-top-fraction needs --scorer"):
        config_for(str(tmp_path), clip_score_top_fraction=0.3)


def test_the_report_section_shows_the_funnel_and_removed_pairs_with_their_reason(sized_shard, tmp_path, config_for):
    from clipline.pipelines.config import ReportConfig
    from clipline.pipelines.report import curation
    from clipline.pipelines.report.store import StoreReader

    config = config_for(str(tmp_path / "data"), min_caption_words=4, min_image_size=100, max_aspect_ratio=3)
    curate(config)
    with StoreReader(config.store.results_uri) as store:
        page = curation.render(ReportConfig(store=config.store), store)
    assert "Curation funnel" in page and "<svg" in page
    assert page.count('<img class="thumb"') == 6  # every removed sample (6 of 8), each with its reason
    assert "min_caption_words,min_image_size,max_aspect_ratio" in page  # k4 fails all three
