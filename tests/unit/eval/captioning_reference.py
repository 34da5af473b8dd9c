"""clip_benchmark 1.6.2's captioning metrics as a reference: its own code, run by tests/support/cb_captioning.py.

clip_benchmark is installed with --no-deps (2 MB) where `make install` puts it
($VENV/opt/clip_benchmark-1.6.2; installed there by the first test that needs it
when make did not, e.g. a bare `pytest`); its captioning module runs on this
interpreter's open_clip, tqdm and pycocoevalcap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CB_VERSION = "1.6.2"
SCRIPT = Path(__file__).resolve().parents[2] / "support" / "cb_captioning.py"


def clip_benchmark_dir() -> Path:
    """The folder holding the `clip_benchmark` package, installed into it first if missing.

    Not pytest's `config.cache`: CI runs with `-p no:cacheprovider`.
    """
    target = Path(sys.executable).parents[1] / "opt" / f"clip_benchmark-{CB_VERSION}"
    if not (target / "clip_benchmark").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        f"clip_benchmark=={CB_VERSION}"], check=True, capture_output=True, timeout=600)
    return target


def clip_benchmark_captioning(folder: Path, candidates: list[str], references: list[list[str]]) -> dict:
    """clip_benchmark's `coco_eval.eval` ({"Bleu_1": ..., "CIDEr": ...}) and whether it ran with Java."""
    env = {**os.environ, "PYTHONPATH": str(folder)}
    out = subprocess.run([sys.executable, str(SCRIPT)], input=json.dumps({"candidates": candidates,
                                                                        "references": references}),
                         capture_output=True, text=True, env=env, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# Generated captions against one to three references: digits templates, COCO-like sentences, punctuation,
# clitics, brackets and numbers (the tokenizer's cases), exact and partial matches.
CASES: list[tuple[str, list[str]]] = [
    ("a handwritten seven", ["a handwritten seven", "the digit seven"]),
    ("a handwritten one", ["a handwritten seven", "the digit seven"]),
    ("the digit two", ["a handwritten two", "the digit two", "a photo of a two"]),
    ("a photo of a three.", ["a handwritten three", "a photo of the number three"]),
    ("A dog runs on the beach.", ["A dog running along the beach.", "A brown dog plays in the sand near the sea"]),
    ("a man's bike, leaning (on) a wall!", ["A man's bicycle leans against a brick wall.", "a bike by a wall"]),
    ("Don't stop: the \"best\" cat...", ["The best cat doesn't stop.", "a cat that won't stop"]),
    ("two people standing next to a bus", ["Two people are standing next to a red bus.", "people near a bus",
                                           "a bus with two people beside it"]),
    ("It's a cat-dog hybrid; wow?", ["a cat and a dog", "It's a hybrid of a cat and a dog"]),
    ("there are 1,000 birds flying at 10:30", ["Many birds fly in the sky.", "a flock of 1,000 birds"]),
    ("a plate with pizza , salad and a drink .", ["A plate of pizza and salad with a drink.", "food on a plate"]),
    ("the U.S. flag on a pole", ["An American flag flies on a pole.", "the u.s. flag"]),
    ("cannot see the train", ["a train you can not see", "the train is hidden"]),
    ("a kitchen", ["a kitchen with a stove and a sink", "an empty kitchen"]),
    ("", ["an image with no caption generated"]),
]
