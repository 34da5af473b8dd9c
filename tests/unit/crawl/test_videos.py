"""Video shards crawled for real (local HTTP server, real clips, no Ray), and the frame sampler on its own."""

from __future__ import annotations

import io
import json
import math

import av
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.config import ImageConfig, ReaderConfig, VideoConfig, VideoFetchConfig, VideoIngestConfig
from clipline.pipelines.crawl.reader import split_shards
from clipline.pipelines.crawl.sample import SampleRejected
from clipline.pipelines.crawl.shard import crawl_shard
from clipline.pipelines.crawl.videos import VideoDecoder, VideoRejected, Window, frame_targets, sample_video
from clipline.pipelines.shard_format import ShardFiles, read_samples
from support import videos
from support.http_server import HTML_PAGE
from support.images import real_photos

IMAGE = ImageConfig(image_size=64, resize_mode="center_crop")
VIDEO = VideoConfig(max_resolution=480, max_duration_s=8)  # bigbuckbunny (720p) too large, bikes (10 s) too long
SERVED = {  # path under /static/ -> (bytes, content type)
    "bikes.mp4": (videos.clip("bikes"), "video/mp4"),
    "carphone.mp4": (videos.clip("carphone"), "video/mp4"),
    "bunny.mp4": (videos.clip("bigbuckbunny"), "video/mp4"),
    "bikes.webm": (videos.webm_clip(), "video/webm"),
    "audio.mp4": (videos.audio_only_mp4(), "video/mp4"),
    "truncated.mp4": (videos.truncated_mp4(), "video/mp4"),
    "garbage.mkv": (videos.garbage_stream_mkv(), "video/x-matroska"),
    "truncated.webm": (videos.truncated_webm(), "video/webm"),
    "photo.mp4": (real_photos()["astronaut"], "video/mp4"),
    "page.mp4": (HTML_PAGE, "video/mp4"),
    "empty.mp4": (b"", "video/mp4"),
}
# (path, start, end) -> (status, error message prefix or None)
EXPECTED = {
    ("/static/bikes.mp4", 2.0, 4.0): ("success", None),
    ("/static/carphone.mp4", None, None): ("success", None),
    ("/static/bikes.webm", None, None): ("success", None),
    ("/static/bikes.mp4", 9.9, 20.0): ("success", None),  # clamped to 0.1 s: 2-3 frames for 8 asked
    ("/static/bikes.mp4", None, None): ("failed_to_resize", "video too long: clip of 10.00 s exceeds max_duration_s 8"),
    ("/static/bikes.mp4", 12.0, 15.0): ("failed_to_resize", "clip window outside the video: starts at 12 s"),
    ("/static/bunny.mp4", None, None): ("failed_to_resize", "video too large: 1280x720"),
    ("/static/audio.mp4", None, None): ("failed_to_resize", "no video stream: the container holds audio only"),
    ("/static/truncated.mp4", None, None): ("failed_to_resize", "truncated video: mp4 box 'mdat'"),
    ("/static/garbage.mkv", None, None): ("failed_to_resize", "undecodable video stream (h264)"),
    ("/static/truncated.webm", None, None): ("failed_to_resize", "truncated video: declared 2.00 s, decodable 1."),
    ("/static/photo.mp4", None, None): ("failed_to_resize", "not a video: a still image (jpeg_pipe)"),
    ("/static/page.mp4", None, None): ("failed_to_resize", "not a video: no container FFmpeg recognises"),
    ("/static/empty.mp4", None, None): ("failed_to_download", "empty body"),
    ("/404", None, None): ("failed_to_download", "http error 404"),
}


def video_config(output_uri: str, video: VideoConfig = VIDEO) -> VideoIngestConfig:
    return VideoIngestConfig(
        reader=ReaderConfig(url_list_uri="unused.csv", samples_per_shard=100), output_uri=output_uri,
        fetch=VideoFetchConfig(allowed_networks=["127.0.0.0/8"], timeout_s=10, retries=0), image=IMAGE, video=video)


def url_table(server, rows) -> pa.Table:
    return pa.table({"url": [server.url(path) for path, _, _ in rows],
                     "caption": [f"a clip of {path}" for path, _, _ in rows],
                     "start": pa.array([start for _, start, _ in rows], pa.float64()),
                     "end": pa.array([end for _, _, end in rows], pa.float64())})


def crawl(config: VideoIngestConfig, table: pa.Table, **kwargs):
    shard = next(split_shards([table], config.reader.samples_per_shard))
    return crawl_shard(shard.shard_id, shard.rows, config, VideoDecoder(config.video, config.image), **kwargs)


@pytest.fixture(scope="module")
def served(http_server):
    for path, (data, content_type) in SERVED.items():
        http_server.add_file(path, data, content_type)
    return http_server


@pytest.fixture(scope="module")
def crawled(served, tmp_path_factory):
    config = video_config(str(tmp_path_factory.mktemp("videos")))
    result = crawl(config, url_table(served, list(EXPECTED)))
    files = ShardFiles.of(config.output_uri, 0)
    return config, result, pq.read_table(files.parquet).to_pylist(), read_samples(files.tar)


def test_every_video_row_gets_its_status_and_specific_error(crawled):
    _, result, rows, _ = crawled
    assert len(rows) == len(EXPECTED)
    for row, ((path, start, end), (status, error)) in zip(rows, EXPECTED.items(), strict=True):
        assert row["url"].endswith(path) and (row["start"], row["end"]) == (start, end), row
        assert row["status"] == status, row
        assert (row["error_message"] or "").startswith(error or ""), row["error_message"]
    assert result.stats["successes"] == 4 and result.stats["failed_to_download"] == 2


def test_status_rows_carry_duration_and_frame_count_or_nulls(crawled):
    _, _, rows, _ = crawled
    for row in rows:
        columns = ("width", "height", "original_width", "original_height", "duration", "num_frames")
        if row["status"] == "success":
            assert row["num_frames"] == 8 and row["duration"] > 0 and (row["width"], row["height"]) == (64, 64)
        else:
            assert all(row[c] is None for c in columns), row
    by_path = {(r["url"].rsplit("/", 1)[-1], r["start"]): r for r in rows}
    assert by_path[("bikes.mp4", 2.0)]["duration"] == pytest.approx(2.0)
    assert (by_path[("carphone.mp4", None)]["original_width"], by_path[("carphone.mp4", None)]["original_height"]
            ) == (176, 144)


def test_tar_holds_decodable_frames_inside_the_clip_window(crawled):
    _, _, rows, samples = crawled
    assert set(samples) == {r["key"] for r in rows if r["status"] == "success"}
    for key, members in samples.items():
        frames = sorted(m for m in members if m.startswith("f"))
        assert frames == [f"f{i:03d}.jpg" for i in range(8)] and set(members) - set(frames) == {"txt", "json"}
        for name in frames:
            assert Image.open(io.BytesIO(members[name])).convert("RGB").size == (64, 64)
        meta = json.loads(members["json"])
        assert meta["key"] == key and meta["caption"] == members["txt"].decode()
        times = meta["frame_timestamps"]
        assert len(times) == 8 and times == sorted(times)
        assert all(meta["clip_start"] <= t <= meta["clip_end"] + 1e-6 for t in times), meta
        assert meta["source_fps"] in (25, pytest.approx(30000 / 1001)) and meta["video_duration"] >= meta["duration"]


def test_short_clip_repeats_frames_and_says_so(crawled):
    _, _, rows, samples = crawled
    clamped = next(r for r in rows if r["start"] == 9.9)
    meta = json.loads(samples[clamped["key"]]["json"])
    assert meta["repeated_frames"] and meta["window_clamped"] and meta["clip_end"] == pytest.approx(10.0)
    assert 1 < len(set(meta["frame_timestamps"])) < 8
    full = next(r for r in rows if r["url"].endswith("carphone.mp4"))
    assert not json.loads(samples[full["key"]]["json"])["repeated_frames"]


def test_committed_video_shard_is_skipped_without_fetching(crawled, served):
    config, _, _, _ = crawled
    before = served.hits("/static/carphone.mp4")
    assert crawl(config, url_table(served, list(EXPECTED))).skipped
    assert served.hits("/static/carphone.mp4") == before


def test_keep_video_stores_the_download_or_the_remuxed_cut(served, tmp_path):
    config = video_config(str(tmp_path), VIDEO.model_copy(update={"keep_video": True}))
    crawl(config, url_table(served, [("/static/carphone.mp4", None, None), ("/static/bikes.mp4", 2.0, 4.0)]))
    whole, cut = (members for _, members in sorted(read_samples(ShardFiles.of(str(tmp_path), 0).tar).items()))
    assert whole["mp4"] == videos.clip("carphone")
    with av.open(io.BytesIO(cut["mp4"])) as clip:
        seconds = sum(1 for _ in clip.decode(video=0)) / 25
    kept = json.loads(cut["json"])["video"]
    assert kept["source"] == "remuxed mp4" and kept["start"] <= 2.0 and kept["end"] == 4.0
    assert 4.0 - kept["start"] <= seconds <= 4.0 - kept["start"] + 0.2  # plus the B-frame delay at the end


def test_video_shard_written_to_s3(served, s3_uri):
    out = storage.join(s3_uri, "videos")
    result = crawl(video_config(out), url_table(served, [("/static/carphone.mp4", None, None), ("/404", None, None)]))
    assert result.stats["successes"] == 1
    assert list(read_samples(ShardFiles.of(out, 0).tar)) == ["0000000"]
    assert storage.exists(ShardFiles.of(out, 0).stats)


# -- the sampler on its own -----------------------------------------------------------------------------------


def test_targets_are_centres_of_equal_segments():
    window = Window(2.0, 4.0, cut=True, clamped=False)
    assert frame_targets(window, VideoConfig(num_frames=4)) == [2.25, 2.75, 3.25, 3.75]
    assert len(frame_targets(window, VideoConfig(fps=2.5))) == 5


@pytest.mark.parametrize("clip", ["bikes", "bigbuckbunny", "carphone"])
def test_every_frame_access_mode_picks_the_same_frames(clip):
    picked = {mode: sample_video(videos.clip(clip), {}, VideoConfig(num_frames=6, frame_access=mode), IMAGE)
              for mode in ("auto", "seek", "sequential")}
    times = {mode: s.meta["frame_timestamps"] for mode, s in picked.items()}
    frames = {mode: [s.members[f"f{i:03d}.jpg"] for i in range(6)] for mode, s in picked.items()}
    assert times["auto"] == times["seek"] == times["sequential"]
    assert frames["auto"] == frames["seek"] == frames["sequential"]


def test_auto_seeks_only_where_it_saves_decoding():
    bikes_auto, bikes_sequential, bunny_auto = (
        sample_video(videos.clip(clip), {}, VideoConfig(frame_access=mode), IMAGE).meta["frame_access"]
        for clip, mode in (("bikes", "auto"), ("bikes", "sequential"), ("bigbuckbunny", "auto")))
    assert bikes_auto["seeks"] > 1 and bikes_auto["frames_decoded"] < bikes_sequential["frames_decoded"]
    assert bunny_auto["seeks"] == 1  # one keyframe: a single sequential pass


def test_fps_sampling_and_window_strings():
    sample = sample_video(videos.clip("bikes"), {"start": "00:00:01.5", "end": "3.5"}, VideoConfig(fps=4), IMAGE)
    times = sample.meta["frame_timestamps"]
    assert sample.fields["num_frames"] == len(times) == 8 and sample.fields["duration"] == pytest.approx(2.0)
    assert all(1.5 <= t <= 3.5 for t in times) and math.isclose(sample.meta["clip_start"], 1.5)


@pytest.mark.parametrize(("body", "row", "message"), [
    (videos.truncated_faststart(), {}, "truncated video: mp4 box 'mdat'"),
    (videos.clip("bikes"), {"start": 5, "end": 3}, "bad clip window: start 5 s, end 3 s"),
    (videos.clip("bikes"), {"start": "soon"}, "bad clip window: column 'start' holds 'soon', not seconds"),
])
def test_bad_bodies_and_windows_are_rejected_by_name(body, row, message):
    with pytest.raises(VideoRejected, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as caught:
        sample_video(body, row, VideoConfig(), IMAGE)
    assert isinstance(caught.value, SampleRejected)


def decodable_seconds(body: bytes) -> float:
    """Where the body's frames stop showing, from PyAV alone: the last frame's time plus its duration."""
    with av.open(io.BytesIO(body)) as container:
        stream = container.streams.video[0]
        *_, last = container.decode(stream)
        return float(last.time + last.duration * last.time_base) - float(stream.start_time * stream.time_base)


def test_a_video_whose_frames_end_early_is_truncated_unless_partial_videos_are_kept():
    body = videos.truncated_webm()
    decodable = decodable_seconds(body)
    assert 1.0 < decodable < 1.8  # the cut leaves most of the frames but not the last 0.2 s
    with pytest.raises(VideoRejected, match=rf"^truncated video: declared 2.00 s, decodable {decodable:.2f} s$"):
        sample_video(body, {}, VideoConfig(), IMAGE)
    kept = sample_video(body, {}, VideoConfig(keep_partial_videos=True), IMAGE).meta
    assert kept["partial"] == {"declared_s": 2.0, "decodable_s": pytest.approx(decodable, abs=1e-6)}
    assert kept["repeated_frames"] and max(kept["frame_timestamps"]) < decodable
    whole = sample_video(videos.webm_clip(), {}, VideoConfig(keep_partial_videos=True), IMAGE).meta
    assert "partial" not in whole and not whole["repeated_frames"]


def test_an_hls_playlist_is_refused_and_its_segments_never_fetched(trap):
    before = trap.connections
    playlist = (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{trap.url('/seg0.ts')}\n"
                f"#EXTINF:2.0,\n{trap.url('/seg1.ts')}\n#EXT-X-ENDLIST\n").encode()
    with pytest.raises(VideoRejected, match="^not a video file: an HLS playlist"):
        sample_video(playlist, {}, VideoConfig(), IMAGE)
    assert trap.connections == before


def test_a_concat_list_never_opens_the_files_it_names(tmp_path, monkeypatch):
    # A relative name is one the concat demuxer's safe mode lets through: without the guards (the first-bytes
    # check or the demuxer whitelist, each enough alone) this decodes bikes.mp4 as if it had been downloaded.
    (tmp_path / "seg.mp4").write_bytes(videos.clip("bikes"))
    monkeypatch.chdir(tmp_path)
    body = b"ffconcat version 1.0\nfile seg.mp4\n"
    with pytest.raises(VideoRejected, match="^not a video"):
        sample_video(body, {}, VideoConfig(), IMAGE)
