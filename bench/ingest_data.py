"""Build the URL list for the ingest benchmark from real photos that ship offline.

The photos come from scikit-image's bundled data (astronaut, coffee, chelsea, ...).
Each one is a random crop of one of them, resized so that its longest side is
spread uniformly over 100..1500 px (or another range: --sides), and saved as JPEG (quality 90). The URL list
cycles over those photos, but each row gets its own file whose bytes differ (a
JPEG comment segment holding the row number; same pixels): every row is a separate
fetch of a distinct JPEG, as in a real crawl, so no tool saves work on repeated
bytes (clipline flags byte-identical images as duplicates). Everything is seeded.

    python bench/ingest_data.py --base-url http://127.0.0.1:8080 --out urls.csv

writes the photos and per-row files under --image-dir, to be served at --base-url.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("bench.ingest_data")

# Real photographs (and photo-like scans) that skimage loads without a download.
SOURCE_NAMES = (
    "astronaut", "coffee", "chelsea", "cat", "rocket", "camera", "moon", "coins",
    "clock", "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass",
    "gravel", "cell",
)
MIN_SIDE, MAX_SIDE = 100, 1500
# Longest-side ranges of the benchmark's size mixes, px: the default, and small web images (thumbnails, product
# shots), where decoding at a JPEG scale saves least and the per-image costs around the pixels weigh most.
SIDES: dict[str, tuple[int, int]] = {"mixed": (MIN_SIDE, MAX_SIDE), "small": (150, 600)}
JPEG_QUALITY = 90
MANIFEST = "manifest.json"
ROWS = "rows"  # one file per URL row, under image_dir
FORMAT_VERSION = 1


def load_sources() -> dict[str, np.ndarray]:
    """Return the skimage photos that load offline here, as RGB uint8 arrays."""
    import skimage.data

    sources = {}
    for name in SOURCE_NAMES:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except (AttributeError, ImportError, OSError, ValueError) as exc:  # needs pooch, renamed
            log.debug("skip skimage.data.%s: %s", name, exc)
            continue
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        sources[name] = np.ascontiguousarray(img[..., :3].astype(np.uint8))
    if not sources:
        raise RuntimeError("no scikit-image sample photo loads offline")
    return sources


def make_image(rng: np.random.Generator, photo: np.ndarray, longest: int) -> Image.Image:
    """A random crop (35-100% of each side) of `photo`, resized to `longest` px on its long side."""
    h, w = photo.shape[:2]
    ch = int(h * rng.uniform(0.35, 1.0))
    cw = int(w * rng.uniform(0.35, 1.0))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    crop = Image.fromarray(photo[y : y + ch, x : x + cw])
    scale = longest / max(ch, cw)
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    return crop.resize(size, Image.Resampling.LANCZOS)


def build_images(image_dir: Path, num_images: int = 400, seed: int = 0,
                 sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)) -> list[dict]:
    """Write `num_images` JPEGs, longest side uniform over `sides`, into image_dir (cached by a manifest);
    return the manifest."""
    params = {"version": FORMAT_VERSION, "num_images": num_images, "seed": seed}
    if sides != (MIN_SIDE, MAX_SIDE):
        params["sides"] = list(sides)  # the default mix keeps the manifest written before this option
    manifest_path = image_dir / MANIFEST
    if manifest_path.exists():
        cached = json.loads(manifest_path.read_text())
        if cached.get("params") == params:
            return cached["images"]
    log.info("writing %d benchmark JPEGs into %s", num_images, image_dir)
    shutil.rmtree(image_dir / ROWS, ignore_errors=True)  # copies of the old photos
    image_dir.mkdir(parents=True, exist_ok=True)
    sources = load_sources()
    names = sorted(sources)
    rng = np.random.default_rng(seed)
    longest_sides = rng.integers(sides[0], sides[1] + 1, size=num_images)
    images = []
    for i, longest in enumerate(longest_sides):
        name = names[i % len(names)]
        img = make_image(rng, sources[name], int(longest))
        file = f"{i:05d}.jpg"
        img.save(image_dir / file, "JPEG", quality=JPEG_QUALITY)
        images.append({"file": file, "source": name, "width": img.width, "height": img.height})
    manifest_path.write_text(json.dumps({"params": params, "images": images}, indent=1))
    return images


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment after SOI: other bytes, same pixels."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def row_file(row: int) -> str:
    return f"{ROWS}/{row:06d}.jpg"


def write_row_files(image_dir: Path, images: list[dict], num_urls: int) -> None:
    """Make sure image_dir/rows/ holds one distinct JPEG per row (cached: only missing ones)."""
    (image_dir / ROWS).mkdir(exist_ok=True)
    missing = [row for row in range(num_urls) if not (image_dir / row_file(row)).exists()]
    if not missing:
        return
    log.info("writing %d per-row JPEG copies into %s", len(missing), image_dir / ROWS)
    photos = [(image_dir / img["file"]).read_bytes() for img in images]
    for row in missing:
        data = with_comment(photos[row % len(photos)], f"clipline bench row {row}")
        (image_dir / row_file(row)).write_bytes(data)


def write_url_list(path: Path, base_url: str, images: list[dict], num_urls: int) -> None:
    """Write a url,caption CSV of `num_urls` rows, one distinct file (write_row_files) each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["url", "caption"])
        for row in range(num_urls):
            img = images[row % len(images)]
            caption = f"a photo ({img['source']}), {img['width']}x{img['height']} px, row {row}"
            out.writerow([f"{base_url.rstrip('/')}/{row_file(row)}", caption])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-urls", type=int, default=20_000)
    parser.add_argument("--num-images", type=int, default=400, help="distinct JPEG files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-dir", type=Path, default=Path(".bench/ingest/images"))
    parser.add_argument("--base-url", required=True, help="where image-dir is served")
    parser.add_argument("--out", type=Path, default=Path("urls.csv"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    images = build_images(args.image_dir, args.num_images, args.seed)
    write_row_files(args.image_dir, images, args.num_urls)
    write_url_list(args.out, args.base_url, images, args.num_urls)
    log.info("wrote %d URLs to %s", args.num_urls, args.out)


if __name__ == "__main__":
    main()
