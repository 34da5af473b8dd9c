"""Where the CPU of image ingest goes, stage by stage, on the benchmark's photos (issue #15).

Each stage of clipline's per-image work, timed alone on one thread over every photo (bytes already in memory,
best of --passes): the JPEG decode at draft scale, the resize with the crop folded in, the JPEG encode at
quality 95, the SHA-256 of the downloaded body and the tar header. Beside it, the same decode, resize and
encode with OpenCV (img2dataset's library: `cv2.imdecode`, `cv2.resize` with INTER_AREA down and INTER_LANCZOS4
up, `cv2.imencode`), run in img2dataset's own environment, to show what a faster resampler would give.

    python bench/ingest_stages.py IMAGE_DIR [--passes 5] [--opencv-python .bench/img2dataset-venv/bin/python]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from imaging import imaging_library

log = logging.getLogger("bench.ingest_stages")
MANIFEST = "manifest.json"  # bench/ingest_data.py's, read here without importing it (OpenCV runs elsewhere)
IMAGE_SIZE = 256


def _bodies(image_dir: Path) -> list[bytes]:
    files = [entry["file"] for entry in json.loads((image_dir / MANIFEST).read_text())["images"]]
    return [(image_dir / name).read_bytes() for name in files]


def _best(passes: int, items: list, work) -> float:
    """CPU ms per item of `work(item)` over every item, the fastest of `passes` passes."""
    best = float("inf")
    for _ in range(passes):
        started = time.thread_time()
        for item in items:
            work(item)
        best = min(best, (time.thread_time() - started) / len(items))
    return 1000 * best


def _resize_split(passes: int, upscaled: list, downscaled: list, resize) -> dict[str, float | None]:
    """The resize rows of enlarged and of reduced photos apart (their filters differ); both libraries' rows share
    these names, the counts included, so a table pairs them only where both split the photos alike."""
    return {f"resize + crop, {kind} ({len(items)} photos)": _best(passes, items, resize) if items else None
            for kind, items in (("upscaled", upscaled), ("downscaled", downscaled))}


class _Discard(io.RawIOBase):
    """A binary file that keeps nothing: the tar stage costs the headers and copies, not a disk."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(data)


def pillow_stages(image_dir: Path, passes: int) -> dict[str, float]:
    """clipline's stages, each on the previous stage's output (kept in memory between stages)."""
    from clipline.pipelines.config import ImageConfig
    from clipline.pipelines.crawl import images
    from clipline.pipelines.crawl.writer import TarSink

    config = ImageConfig(image_size=IMAGE_SIZE, resize_mode="center_crop", encode_format="jpg")
    bodies = _bodies(image_dir)

    def decode(body: bytes):
        image = images._open(body, config.max_pixels)
        geometry = images.plan_geometry(*image.size, config)
        return image, geometry, images._decode(image, geometry)

    decoded = [decode(body) for body in bodies]
    fitted = [images._fit(*d) for d in decoded]
    encoded = [images.encode_image(f, config) for f in fitted]
    upscaled = [d for d in decoded if d[1].scale >= 1]  # the resize filter differs (images.UPSCALE_FILTER)
    downscaled = [d for d in decoded if d[1].scale < 1]
    sink = TarSink(_Discard())
    fit = lambda d: images._fit(*d)  # noqa: E731
    figures = {
        "decode (draft scale)": _best(passes, bodies, decode),
        "resize + crop": _best(passes, decoded, fit),
        **_resize_split(passes, upscaled, downscaled, fit),
        "encode JPEG q95": _best(passes, fitted, lambda f: images.encode_image(f, config)),
        "SHA-256 of the body": _best(passes, bodies, lambda b: hashlib.sha256(b).hexdigest()),
        "tar (3 members)": _best(passes, encoded, lambda e: sink.add(
            "000000001", {"jpg": e, "txt": b"a caption", "json": b"{}"})),
        "process_image (all image work)": _best(passes, bodies, lambda b: images.process_image(b, config)),
    }
    figures["mean input pixels (K)"] = sum(d[0].size[0] * d[0].size[1] for d in decoded) / len(decoded) / 1000
    figures["photos"] = len(bodies)
    return figures


def opencv_stages(image_dir: Path, passes: int) -> dict[str, float]:
    """The same decode, center-crop resize and encode as img2dataset does them with OpenCV."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    bodies = _bodies(image_dir)

    def decode(body: bytes):
        return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)

    def resize(img):
        height, width = img.shape[:2]
        scale = IMAGE_SIZE / min(width, height)
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
        img = cv2.resize(img, (max(IMAGE_SIZE, round(width * scale)), max(IMAGE_SIZE, round(height * scale))),
                         interpolation=interpolation)
        top, left = (img.shape[0] - IMAGE_SIZE) // 2, (img.shape[1] - IMAGE_SIZE) // 2
        return img[top:top + IMAGE_SIZE, left:left + IMAGE_SIZE]

    decoded = [decode(b) for b in bodies]
    resized = [resize(d) for d in decoded]
    upscaled = [d for d in decoded if min(d.shape[:2]) <= IMAGE_SIZE]  # as Geometry.scale >= 1 (Pillow's rows)
    downscaled = [d for d in decoded if min(d.shape[:2]) > IMAGE_SIZE]
    encode = lambda img: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])  # noqa: E731
    return {
        "decode (draft scale)": _best(passes, bodies, decode),
        "resize + crop": _best(passes, decoded, resize),
        **_resize_split(passes, upscaled, downscaled, resize),
        "encode JPEG q95": _best(passes, resized, encode),
        "process_image (all image work)": _best(passes, bodies, lambda b: encode(resize(decode(b)))),
    }


def table(ours: dict[str, float], theirs: dict[str, float] | None) -> str:
    lines = [f"| stage | clipline ({imaging_library()}) ms/image | OpenCV (img2dataset's library) ms/image |",
             "| --- | ---: | ---: |"]
    for stage, ms in ours.items():
        if stage.startswith("mean") or stage == "photos":
            continue
        other = theirs.get(stage) if theirs else None
        cells = [f"{v:.3f}" if v is not None else "-" for v in (ms, other)]
        lines.append(f"| {stage} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image_dir", type=Path, help="a folder of bench/ingest_data.py's photos (with its manifest)")
    p.add_argument("--passes", type=int, default=5, help="passes over the photos; the fastest counts")
    p.add_argument("--opencv-python", type=Path, help="a Python with OpenCV (img2dataset's environment)")
    p.add_argument("--opencv-only", action="store_true", help=argparse.SUPPRESS)  # the child run in that Python
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.opencv_only:
        sys.stdout.write(json.dumps(opencv_stages(args.image_dir, args.passes)) + "\n")
        return
    ours = pillow_stages(args.image_dir, args.passes)
    theirs = None
    if args.opencv_python:
        done = subprocess.run([str(args.opencv_python), __file__, str(args.image_dir), "--passes", str(args.passes),
                               "--opencv-only"], capture_output=True, text=True, check=True)
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
    log.info("%d photos, mean %.0fK pixels\n%s", ours["photos"], ours["mean input pixels (K)"], table(ours, theirs))


if __name__ == "__main__":
    main()
