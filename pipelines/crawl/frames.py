"""Reach the frames a clip needs with as little decoding as possible.

A video decoder cannot start anywhere: it must begin at a keyframe and decode every frame after it. Two
ways to reach frame targets follow: seek (the demuxer jumps to the keyframe at or before a target, the
decoder goes forward from there) or decode on from the last frame. A seek pays off when a keyframe lies
between the last decoded frame and the next target, and only then; the container's keyframe index
(`stream.index_entries`; mp4 and WebM have one) says where keyframes are, so "auto" decides per target
and, for targets closer together than keyframes, ends up as one sequential pass. "seek" seeks before every
target, "sequential" once before the first. docs/benchmarks.md (make bench-ingest-videos) measures all three.

A container without an index (Matroska without cues, MPEG-TS, raw streams) is decoded from its start
whatever the mode: seeking there is a search that may fail and leave the demuxer anywhere.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av

from clipline.pipelines.crawl.sample import SampleRejected

EPS_S = 1e-6  # frame times are rationals turned into floats
# A stream may end a little before its container's declared duration (audio running on, rounding): up to
# END_SLACK_S, at most END_SLACK_FRACTION of the duration, but always two frames. Past that, it is truncated.
END_SLACK_S = 0.5
END_SLACK_FRACTION = 0.05


class VideoRejected(SampleRejected):
    """A body that cannot become a stored video sample; str(e) is the specific error_message."""


@dataclass(frozen=True)
class PickedFrame:
    time: float  # seconds from the video's first frame
    frame: av.VideoFrame


SeekPlan = Callable[[list[float], list[float]], list[bool]]  # (targets, keyframe times) -> seek before each?


def _seek_every_target(targets: list[float], keyframes: list[float]) -> list[bool]:
    return [True] * len(targets)


def _seek_once(targets: list[float], keyframes: list[float]) -> list[bool]:
    return [i == 0 for i in range(len(targets))]


def _seek_past_keyframes(targets: list[float], keyframes: list[float]) -> list[bool]:
    """Seek before a target only when a keyframe lies after the last target reached and at or before it."""
    seeks, reached = [], -math.inf
    for target in targets:
        index = bisect.bisect_right(keyframes, target + EPS_S) - 1
        seeks.append(index >= 0 and keyframes[index] > reached)
        reached = target
    seeks[0] = True
    return seeks


FRAME_ACCESS: dict[str, SeekPlan] = {
    "auto": _seek_past_keyframes,
    "seek": _seek_every_target,
    "sequential": _seek_once,
}


def keyframe_times(stream: av.VideoStream, origin: float) -> list[float]:
    """Presentation times of the keyframes in the container's index, sorted.

    mp4 indexes decode timestamps, which run ahead of presentation by the B-frame delay, and the
    demuxer seeks by presentation time: so the delay (the first frame's presentation time minus the
    first entry's timestamp; 0 for WebM's presentation-time cues) is added back.
    """
    entries = stream.index_entries
    if not len(entries):
        return []
    delay = max(0, stream.start_time - entries[0].timestamp) if stream.start_time is not None else 0
    return sorted(float((e.timestamp + delay) * stream.time_base) - origin for e in entries if e.is_keyframe)


class FrameCursor:
    """Frames of one stream in presentation order, restarted at a keyframe by `seek`; counts the work done."""

    def __init__(self, container: av.container.InputContainer, stream: av.VideoStream, origin: float,
                 duration: float, keep_partial: bool = False):
        self._container, self.stream = container, stream
        self.origin, self._duration, self._keep_partial = origin, duration, keep_partial
        self._frames: Iterator[av.VideoFrame] | None = None
        self.current: PickedFrame | None = None
        self.decoded = self.seeks = 0  # the work frame_access trades
        self.decodable_s: float | None = None  # set when a kept partial video's frames ended early

    def seek(self, seconds: float) -> None:
        """Restart decoding at the keyframe at or before `seconds`."""
        offset = int((self.origin + seconds) / self.stream.time_base)
        try:
            self._container.seek(offset, stream=self.stream, backward=True, any_frame=False)
        except av.FFmpegError as e:  # a failed seek leaves the demuxer anywhere: no decoding on from there
            raise VideoRejected(f"cannot seek in the video to {seconds:.2f} s: {e}") from None
        self._frames, self.current = None, None
        self.seeks += 1

    def frame_at(self, seconds: float) -> PickedFrame:
        """The first frame presented at or after `seconds`, or the last one where the stream ends just before."""
        while self.current is None or self.current.time < seconds - EPS_S:
            frame = self._next()
            if frame is None:
                return self._at_end(seconds)
            self.current = frame
        return self.current

    def _next(self) -> PickedFrame | None:
        if self._frames is None:
            self._frames = self._container.decode(self.stream)
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                return None
            except av.FFmpegError as e:
                raise self._decode_error(e) from None
            self.decoded += 1
            if frame.time is not None:  # a frame without a timestamp cannot be placed in the clip
                return PickedFrame(frame.time - self.origin, frame)

    def _at_end(self, seconds: float) -> PickedFrame:
        """The stream ended before `seconds`: its last frame, if the stream is whole (or partial ones are kept)."""
        if self.decoded == 0:
            raise VideoRejected(f"undecodable video stream ({self.stream.codec_context.name}): no frame decoded")
        if self.current is None:
            raise VideoRejected(f"truncated video: declared {self._duration:.2f} s, no frame decodes from the "
                                f"keyframe before {seconds:.2f} s")
        frame_s = self._frame_seconds(self.current.frame)
        decodable = self.current.time + frame_s  # the last frame shows until then
        slack = max(2 * frame_s, min(END_SLACK_S, END_SLACK_FRACTION * self._duration))
        if seconds <= decodable + EPS_S or self._duration - decodable <= slack:
            return self.current
        if not self._keep_partial:
            raise VideoRejected(f"truncated video: declared {self._duration:.2f} s, decodable {decodable:.2f} s")
        self.decodable_s = decodable
        return self.current

    def _frame_seconds(self, frame: av.VideoFrame) -> float:
        """How long a frame shows: its own duration, else one period of the stream's frame rate, else 0."""
        if frame.duration and frame.time_base:
            return float(frame.duration * frame.time_base)
        rate = self.stream.guessed_rate or self.stream.average_rate
        return 1 / float(rate) if rate else 0.0

    def _decode_error(self, error: Exception) -> VideoRejected:
        codec = self.stream.codec_context.name
        if self.decoded == 0:
            return VideoRejected(f"undecodable video stream ({codec}): {error}")
        where = f"{self.current.time:.2f} s" if self.current else "a seek"
        return VideoRejected(f"corrupt video stream ({codec}) after {where}: {error}")


def read_frames(cursor: FrameCursor, targets: list[float], access: str) -> Iterator[PickedFrame]:
    """The frame for each target (seconds from the video's start, ascending), reached as `access` plans."""
    keyframes = keyframe_times(cursor.stream, cursor.origin)
    plan = FRAME_ACCESS[access](targets, keyframes) if keyframes else [False] * len(targets)
    for target, seek in zip(targets, plan, strict=True):
        if seek:
            cursor.seek(target)
        yield cursor.frame_at(target)
