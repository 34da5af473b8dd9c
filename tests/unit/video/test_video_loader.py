"""Video shards -> batches of clips: frame counts, caption tokens, and unreadable samples skipped and counted."""

from __future__ import annotations

from clipline.pipelines.crawl.writer import tar_sink
from clipline.pipelines.data.loader import LoaderSpec, make_loader
from clipline.pipelines.data.video_loader import video_sample
from clipline.pipelines.models.registry import build_model
from support.video_order import order_samples, write_video_shards


def test_batches_hold_num_frames_per_clip_and_skip_broken_samples(tmp_path):
    good = order_samples(4, gap=4, step=40, held_out=True)[:6]
    write_video_shards(tmp_path / "good", good, per_shard=100)
    with tar_sink(str(tmp_path / "bad.tar")) as sink:
        sink.add("noframes", {"txt": b"a caption", "json": b"{}"})
        sink.add("brokenjpeg", {"txt": b"a caption", "f000.jpg": b"not a jpeg", "f001.jpg": b"nor this"})
        sink.add("nocaption", {"f000.jpg": good[0].frames[0]})
    built = build_model("clipline-tiny")
    spec = LoaderSpec([str(tmp_path / "bad.tar"), str(tmp_path / "good" / "00000.tar")], 3, shuffle=0,
                      data_workers=0)
    batches = list(make_loader(spec, 0, video_sample(built.preprocess_val, 8), built.tokenizer))
    assert [b.inputs.shape for b in batches] == [(3, 8, 3, 64, 64)] * 2
    assert [b.tokens.shape for b in batches] == [(3, 32)] * 2
    assert sum(b.skipped for b in batches) == 3
