"""The video stage of the crawl: open a downloaded video, cut the clip, sample frames, resize and encode them.

A sample is `key.txt`, `key.json` and the frames `key.f000.jpg`, `key.f001.jpg`, ... (plus the clip with
keep_video). Frames follow CLIP4Clip's uniform slicing: the clip is cut into num_frames equal segments
(floor(clip seconds x fps) with fps) and each segment's centre takes the first frame presented at or after it.
A clip with fewer frames than that repeats frames, and its JSON says "repeated_frames": true.

Decoding is the cost, so frames are reached by seeking where that skips work (pipelines.crawl.frames).
Frames are resized with the image modes (images.resize_image) and encoded as images are.

Crawled bytes never make FFmpeg open anything else: playlists and lists are refused by their first bytes,
the demuxers are whitelisted (OPEN_OPTIONS) and nested opens get no protocol.

Checks run cheapest first, each a VideoRejected with a specific message: mp4 boxes running past the
body (truncated), playlists, bodies FFmpeg cannot open or that are still images (not a video), no video stream,
resolution and duration from the header, the clip window, then decoder errors while sampling.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import av

from clipline.pipelines.config import ImageConfig, VideoConfig
from clipline.pipelines.crawl import frames
from clipline.pipelines.crawl.frames import VideoRejected
from clipline.pipelines.crawl.images import encode_image, resize_image
from clipline.pipelines.crawl.sample import DecodedSample
from clipline.pipelines.shard_format import frame_ext

log = logging.getLogger(__name__)

MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"  # FFmpeg's demuxer for ISO base media files (mp4, mov, 3gp)
SIGNATURES: tuple[tuple[int, bytes, str], ...] = (  # (offset, magic, container): bodies that claim to be videos
    (4, b"ftyp", "mp4"), (0, b"\x1a\x45\xdf\xa3", "matroska/webm"), (0, b"RIFF", "avi"), (0, b"FLV", "flv"),
    (0, b"OggS", "ogg"))
ORIGINAL_EXT = {MP4_FAMILY: "mp4", "matroska,webm": "mkv", "avi": "avi", "flv": "flv", "mpegts": "ts", "ogg": "ogv"}
REMUXERS = (("mp4", "mp4"), ("matroska", "mkv"))  # tried in order; Matroska takes any codec mp4 refuses
# Crawled bytes are opened only with these demuxers: the video containers above, plus single-image pipes (named
# as still images below). Playlists and lists (hls, dash, concat, image2 patterns) would make FFmpeg open other
# URLs or files, and nested opens get no protocol at all ("none" names none).
IMAGE_PIPES = ("jpeg_pipe", "png_pipe", "webp_pipe", "gif_pipe", "bmp_pipe", "tiff_pipe")
OPEN_OPTIONS = {"format_whitelist": ",".join([*ORIGINAL_EXT, *IMAGE_PIPES]), "protocol_whitelist": "none"}
PLAYLISTS = ((b"#EXTM3U", "an HLS playlist"), (b"ffconcat", "an FFmpeg concat list"), (b"<?xml", "an XML manifest"),
             (b"<MPD", "a DASH manifest"), (b"[playlist]", "a PLS playlist"))


@dataclass(frozen=True)
class VideoHeader:
    """What the container and stream headers say, before any frame is decoded."""

    format: str  # FFmpeg demuxer name
    codec: str
    width: int
    height: int
    duration: float  # seconds, whole video
    fps: float | None  # average frame rate, when declared
    origin: float  # stream time of the first frame in seconds: clip times count from here


@dataclass(frozen=True)
class EncodedFrame:
    time: float  # seconds from the video's start
    data: bytes  # the stored image
    size: tuple[int, int]


@dataclass(frozen=True)
class KeptClip:
    ext: str  # tar member extension
    data: bytes
    meta: dict  # what was kept, for the sample's JSON


@dataclass(frozen=True)
class Window:
    """The part of the video sampled, in seconds from its start."""

    start: float
    end: float
    cut: bool  # the row named a start or an end (so keep_video stores a cut, not the download)
    clamped: bool  # the row's end lay past the video and was moved to its end

    @property
    def length(self) -> float:
        return self.end - self.start


def sample_video(body: bytes, row: dict, config: VideoConfig, image: ImageConfig) -> DecodedSample:
    """Check one downloaded video, sample its clip's frames and encode them; raise VideoRejected saying why not."""
    _check_boxes(body)
    with _open(body) as container:
        stream = _video_stream(container)
        header = _read_header(container, stream)
        _check_resolution(header, config)
        window = clip_window(row, config, header.duration)
        _check_duration(window, config)
        cursor = frames.FrameCursor(container, stream, header.origin, header.duration, config.keep_partial_videos)
        picked = _encoded_frames(frames.read_frames(cursor, frame_targets(window, config), config.frame_access),
                                 image)
    members = {frame_ext(i, image.encode_format): frame.data for i, frame in enumerate(picked)}
    meta = {**_meta(header, window, picked), "frame_access": {
        "mode": config.frame_access, "seeks": cursor.seeks, "frames_decoded": cursor.decoded}}
    if cursor.decodable_s is not None:  # kept with --keep-partial-videos
        meta["partial"] = {"declared_s": round(header.duration, 6), "decodable_s": round(cursor.decodable_s, 6)}
    if config.keep_video:
        kept = keep_clip(body, header, window)
        members[kept.ext], meta["video"] = kept.data, kept.meta
    width, height = picked[0].size
    return DecodedSample(members, {
        "width": width, "height": height, "original_width": header.width, "original_height": header.height,
        "duration": round(window.length, 6), "num_frames": len(picked)}, meta)


def _encoded_frames(decoded: Iterator[frames.PickedFrame], image: ImageConfig) -> list[EncodedFrame]:
    """One encoded frame per target, converted as each is decoded; a frame picked twice is converted once."""
    out: list[EncodedFrame] = []
    for picked in decoded:
        if out and picked.time == out[-1].time:
            out.append(out[-1])
            continue
        pixels = resize_image(picked.frame.to_image(), image)
        out.append(EncodedFrame(picked.time, encode_image(pixels, image), pixels.size))
    return out


def _meta(header: VideoHeader, window: Window, picked: list[EncodedFrame]) -> dict:
    times = [frame.time for frame in picked]
    return {
        "video_duration": round(header.duration, 6), "source_fps": header.fps, "codec": header.codec,
        "clip_start": window.start, "clip_end": window.end, "window_clamped": window.clamped,
        "frame_timestamps": [round(t, 6) for t in times], "repeated_frames": len(set(times)) < len(times),
    }


# -- what the body is ---------------------------------------------------------------------------------------


def _check_boxes(body: bytes) -> None:
    """An mp4 is a chain of sized boxes: one that runs past the body means the download was cut short.

    This catches truncation whether the index (moov) comes first or last, before FFmpeg sees the body.
    """
    if body[4:8] != b"ftyp":
        return
    offset = 0
    while offset + 8 <= len(body):
        size, kind = struct.unpack(">I4s", body[offset:offset + 8])
        if size == 1 and offset + 16 <= len(body):  # 64-bit size follows the type
            size = struct.unpack(">Q", body[offset + 8:offset + 16])[0]
        if size == 0:  # the last box runs to the end of the file
            return
        if size < 8 or offset + size > len(body):
            name = kind.decode("latin-1")
            raise VideoRejected(f"truncated video: mp4 box '{name}' at byte {offset} needs {size} bytes, "
                                f"the body ends after {len(body) - offset}")
        offset += size


def _open(body: bytes) -> av.container.InputContainer:
    """The body as an FFmpeg container, opened with the allowed demuxers only and no nested I/O."""
    head = body[:64].lstrip()
    for magic, kind in PLAYLISTS:
        if head.startswith(magic):
            raise VideoRejected(f"not a video file: {kind} (refused: it names other URLs or files to open)")
    try:
        container = av.open(io.BytesIO(body), metadata_errors="replace", options=OPEN_OPTIONS)
    except av.error.ArgumentError:  # FFmpeg's answer to a demuxer outside format_whitelist
        raise VideoRejected(f"not a video file: a container other than {', '.join(ORIGINAL_EXT.values())}") from None
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise _unreadable(body, e) from None
    if container.format.name in IMAGE_PIPES:
        container.close()
        raise VideoRejected(f"not a video: a still image ({container.format.name})")
    return container


def _unreadable(body: bytes, error: Exception) -> VideoRejected:
    claimed = next((name for offset, magic, name in SIGNATURES if body[offset:offset + len(magic)] == magic), None)
    if claimed:
        return VideoRejected(f"corrupt video: looks like {claimed} but FFmpeg cannot read it ({error})")
    start = repr(body[:16])[2:-1]
    return VideoRejected(f"not a video: no container FFmpeg recognises (starts with '{start}')")


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        raise VideoRejected(f"no video stream: the container holds {' and '.join(kinds) or 'no streams'} only")
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"  # frame threads lag a seek by a frame per thread; workers already fill the cores
    return stream


def _read_header(container: av.container.InputContainer, stream: av.VideoStream) -> VideoHeader:
    time_base = stream.time_base
    duration = (float(stream.duration * time_base) if stream.duration
                else container.duration / av.time_base if container.duration else None)
    codec = stream.codec_context.name
    if not duration or duration <= 0:
        raise VideoRejected(f"unknown duration: the container ({container.format.name}) declares none")
    if not stream.codec_context.width or not stream.codec_context.height:
        raise VideoRejected(f"undecodable video stream ({codec}): no frame size in the header")
    rate = stream.average_rate or stream.guessed_rate
    origin = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
    return VideoHeader(container.format.name, codec, stream.codec_context.width, stream.codec_context.height,
                       duration, float(rate) if rate else None, origin)


def _check_resolution(header: VideoHeader, config: VideoConfig) -> None:
    if min(header.width, header.height) > config.max_resolution:
        raise VideoRejected(f"video too large: {header.width}x{header.height}, shorter side over max_resolution "
                            f"{config.max_resolution}")


def _check_duration(window: Window, config: VideoConfig) -> None:
    if window.length > config.max_duration_s:
        raise VideoRejected(f"video too long: clip of {window.length:.2f} s exceeds max_duration_s "
                            f"{config.max_duration_s:g}")


# -- which frames -------------------------------------------------------------------------------------------


def _seconds(row: dict, column: str | None) -> float | None:
    """A window bound from the row: seconds as a number or a string ('12.5', '00:01:02.5'); None if absent."""
    value = row.get(column) if column else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        parts = [float(p) for p in str(value).strip().split(":")]
    except ValueError:
        raise VideoRejected(f"bad clip window: column {column!r} holds {value!r}, not seconds") from None
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def clip_window(row: dict, config: VideoConfig, duration: float) -> Window:
    """The row's [start, end] (either optional), checked against the video; an end past the video is clamped."""
    start, end = _seconds(row, config.start_col), _seconds(row, config.end_col)
    cut = start is not None or end is not None
    start = 0.0 if start is None else start
    wanted_end = duration if end is None else end
    if start >= duration:
        raise VideoRejected(f"clip window outside the video: starts at {start:g} s, the video lasts "
                            f"{duration:.2f} s")
    if start < 0 or wanted_end <= start:
        raise VideoRejected(f"bad clip window: start {start:g} s, end {wanted_end:g} s")
    return Window(start, min(wanted_end, duration), cut, clamped=wanted_end > duration)


def frame_targets(window: Window, config: VideoConfig) -> list[float]:
    """Centres of equal segments of the clip: num_frames of them, or floor(seconds x fps) with fps."""
    count = config.num_frames if config.fps is None else max(1, math.floor(window.length * config.fps + 1e-9))
    step = window.length / count
    return [window.start + (i + 0.5) * step for i in range(count)]


# -- the clip itself (keep_video) ---------------------------------------------------------------------------


def keep_clip(body: bytes, header: VideoHeader, window: Window) -> KeptClip:
    """The download itself when the row names no window, else the window remuxed without re-encoding.

    A cut without re-encoding must start at a keyframe, so it starts at the keyframe at or before the
    window's start (its JSON says where), and ends at the last packet decoded by the window's end (up
    to a B-frame delay, a frame or two, of later frames).
    """
    if not window.cut:
        return KeptClip(ORIGINAL_EXT.get(header.format, "video"), body, {"source": "downloaded bytes"})
    errors = []
    for muxer, ext in REMUXERS:
        try:
            data, start = _remux(body, header, window, muxer)
            return KeptClip(ext, data, {"source": f"remuxed {muxer}", "start": round(start, 6), "end": window.end})
        except (av.FFmpegError, ValueError) as e:
            errors.append(f"{muxer}: {e}")
    log.warning("storing the downloaded video: remux failed (%s)", "; ".join(errors))
    return KeptClip(ORIGINAL_EXT.get(header.format, "video"), body,
                    {"source": "downloaded bytes: remux failed", "errors": errors})


def _remux(body: bytes, header: VideoHeader, window: Window, muxer: str) -> tuple[bytes, float]:
    """(the cut, its start in seconds): video and audio packets from the keyframe on, rebased to time 0."""
    out = io.BytesIO()
    with (av.open(io.BytesIO(body), metadata_errors="replace", options=OPEN_OPTIONS) as source,
          av.open(out, "w", format=muxer) as sink):
        video = source.streams.video[0]
        inputs = [video, *source.streams.audio]
        outputs = {s.index: sink.add_stream_from_template(s) for s in inputs}
        source.seek(int((header.origin + window.start) / video.time_base), stream=video, backward=True)
        end, shift, start = header.origin + window.end, None, header.origin
        for packet in source.demux(inputs):
            if packet.dts is None or packet.pts is None:
                continue
            time = float(packet.dts * packet.time_base)
            if packet.stream.index == video.index:
                if time > end:
                    break
                if shift is None:  # the keyframe: decode time 0 of the cut
                    shift, start = time, float(packet.pts * packet.time_base)
            if shift is None or not shift <= time <= end:
                continue
            offset = round(shift / packet.time_base)
            packet.pts, packet.dts = packet.pts - offset, packet.dts - offset
            packet.stream = outputs[packet.stream.index]
            sink.mux(packet)
    return out.getvalue(), start - header.origin


@dataclass(frozen=True)
class VideoDecoder:
    """The crawl's decoder for video URLs (see pipelines.crawl.sample): sampled frames plus duration columns."""

    video: VideoConfig
    image: ImageConfig
    fields: tuple[str, ...] = ("width", "height", "original_width", "original_height", "duration", "num_frames")

    def __call__(self, body: bytes, row: dict) -> DecodedSample:
        return sample_video(body, row, self.video, self.image)
