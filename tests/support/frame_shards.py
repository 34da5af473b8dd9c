"""Video samples in clipline's video-ingest layout (key.f000.jpg ... + key.txt + key.json), from real clips."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av

from clipline.pipelines.crawl.writer import tar_sink
from support.videos import _clip_path


def decoded_frames(name: str, size: int = 64, limit: int | None = None) -> list[bytes]:
    """Every frame of a sample clip (bikes, bigbuckbunny, carphone), resized to size x size, as JPEG bytes."""
    frames = []
    with av.open(str(_clip_path(name))) as container:
        for frame in container.decode(video=0):
            buffer = io.BytesIO()
            frame.to_image().convert("RGB").resize((size, size)).save(buffer, "JPEG", quality=90)
            frames.append(buffer.getvalue())
            if limit and len(frames) == limit:
                break
    return frames


def write_frame_shard(uri: str, clips: list[tuple[list[bytes], str]]) -> str:
    """One tar of video samples: each (frames, caption) becomes key.fNNN.jpg + key.txt + key.json."""
    with tar_sink(uri) as sink:
        for index, (frames, caption) in enumerate(clips):
            members = {f"f{i:03d}.jpg": data for i, data in enumerate(frames)}
            sink.add(f"{index:09d}", {**members, "txt": caption.encode(),
                                      "json": json.dumps({"num_frames": len(frames)}).encode()})
    return uri


def write_clip_shard(folder: Path, name: str, num_clips: int, frames_per_clip: int, caption: str) -> str:
    """`num_clips` consecutive, non-overlapping clips of a sample video in one shard `folder/00000.tar`."""
    frames = decoded_frames(name, limit=num_clips * frames_per_clip)
    folder.mkdir(parents=True, exist_ok=True)
    clips = [(frames[i * frames_per_clip:(i + 1) * frames_per_clip], caption) for i in range(num_clips)]
    return write_frame_shard(str(folder / "00000.tar"), clips)
