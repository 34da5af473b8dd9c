"""clip_benchmark 1.6.2's captioning metrics on given captions: the reference of the parity test.

    PYTHONPATH=CLIP_BENCHMARK_DIR python cb_captioning.py < {"candidates": [...], "references": [[...], ...]}

prints clip_benchmark's `coco_eval.eval` as JSON. It builds `results` exactly as
`clip_benchmark.metrics.captioning.evaluate` does after generation, then runs
its `COCOEvalCap(results).evaluate()`: PTB tokenization, then Bleu(4), Meteor,
Rouge, Cider and Spice. Substitutions, all outside the compared metrics:

- Spice answers 0: its constructor would download Stanford CoreNLP (no network here);
- Meteor answers 0 unless CB_METEOR=1: its JVM loads a 60 MB paraphrase table (10 to 20 s);
- without `java`, Meteor answers 0 and the PTB tokenizer is clipline's Java-free
  port (checked against the jar's own output in test_captioning_metrics.py), so
  clip_benchmark's scorers and their aggregation are still what is compared.

clip_benchmark is imported from CLIP_BENCHMARK_DIR (installed there with --no-deps);
its captioning module needs only open_clip, tqdm and pycocoevalcap, which this
interpreter has, and none of the numpy<2 code paths of its classification metrics.
"""

import contextlib
import json
import os
import shutil
import sys

import clip_benchmark.metrics.captioning as captioning


class _NoSpice:
    def compute_score(self, gts, res):
        return 0.0, [0.0] * len(gts)

    def method(self):
        return "SPICE"


class _NoMeteor(_NoSpice):
    def method(self):
        return "METEOR"


class _PythonPTB:
    def tokenize(self, captions):
        from clipline.pipelines.eval.ptb_tokenize import python_tokenize

        return python_tokenize(captions)


def main() -> None:
    given = json.load(sys.stdin)
    captioning.Spice = _NoSpice
    if os.environ.get("CB_METEOR") != "1":
        captioning.Meteor = _NoMeteor
    if shutil.which("java") is None:
        captioning.Meteor, captioning.PTBTokenizer = _NoMeteor, _PythonPTB
    results = []
    for image_id, (pred, true) in enumerate(zip(given["candidates"], given["references"], strict=True)):
        results.append({"image_id": image_id, "gen": [{"caption": pred}],
                        "true": [{"caption": t} for t in true]})  # as captioning.evaluate builds them
    coco_eval = captioning.COCOEvalCap(results)
    with contextlib.redirect_stdout(sys.stderr):
        coco_eval.evaluate()
    print(json.dumps({"java": shutil.which("java") is not None, "eval": coco_eval.eval}))


if __name__ == "__main__":
    main()
