"""A results store with rows for every report section, written by the real ResultsWriter."""

from __future__ import annotations

import math
from pathlib import Path

from clipline.flows.demo_sample import caption
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.writer import ResultsWriter, now
from support.shards import digit_images, write_digit_shards

CLASSES = ("zero", "one", "two")
DATASETS = ("digits", "photos", "clips")
# (domain, sample index % 2) -> the failure its samples get; other samples succeed
ERRORS = {("c.example", 1): ("failed_to_download", "HTTP 404"), ("b.example", 0): ("failed_to_resize", "too small")}


def _train_rows(run_id: str, num_steps: int, scale: float) -> list[dict]:
    rows = []
    for step in range(0, num_steps, 5):
        values = {"loss": scale * math.exp(-step / 30) + 0.1, "lr": 1e-3 * min(1.0, (step + 1) / 10),
                  "logit_scale": 10 + step / 5, "samples_per_s": 100.0}
        rows += [{"run_id": run_id, "step": step, "name": n, "value": v, "time": now()} for n, v in values.items()]
    return rows


def _eval_rows(checkpoint: str, acc1: float, retrieval_dataset: str) -> list[dict]:
    zeroshot = {"acc1": acc1, "acc5": 1.0, "mean_per_class_recall": acc1, "num_samples": 9}
    retrieval = {"image_retrieval_recall@1": acc1 / 2, "text_retrieval_recall@1": acc1 / 3, "num_samples": 8}
    common = {"run_id": f"eval-{checkpoint}", "checkpoint": checkpoint, "time": now()}
    return ([{**common, "dataset": "digits", "task": "zeroshot", "strategy": "ensemble", "metric": m, "value": v}
             for m, v in zeroshot.items()]
            + [{**common, "dataset": retrieval_dataset, "task": "retrieval", "strategy": None, "metric": m, "value": v}
               for m, v in retrieval.items()])


def _zeroshot_predictions(checkpoint: str) -> list[dict]:
    rows = []
    for i in range(9):
        true = CLASSES[i % 3]
        predicted = true if i < 6 else CLASSES[(i + 1) % 3]
        rows.append({"run_id": f"eval-{checkpoint}", "checkpoint": checkpoint, "dataset": "digits",
                     "task": "zeroshot", "strategy": "ensemble", "key": f"d{i}", "true_label": true,
                     "predicted_label": predicted, "correct": true == predicted,
                     "top5_labels": [predicted, *[c for c in CLASSES if c != predicted]],
                     "top5_scores": [0.6, 0.3, 0.1]})
    return rows


def _retrieval_predictions(checkpoint: str, shards: Path, labels: dict[str, int]) -> list[dict]:
    captions = [caption(label) for label in labels.values()]
    rows = []
    for key, label in labels.items():
        ranked = sorted(set(captions), key=lambda c: (c != caption(label), c))[:5]
        rows.append({"run_id": f"eval-{checkpoint}", "checkpoint": checkpoint, "dataset": str(shards),
                     "task": "retrieval", "strategy": None, "key": key, "true_label": caption(label),
                     "predicted_label": ranked[0], "correct": True, "top5_labels": ranked,
                     "top5_scores": [0.9 - 0.1 * i for i in range(len(ranked))]})
    return rows


def _captioning_rows(checkpoint: str, shards: Path, labels: dict[str, int]) -> tuple[list[dict], list[dict]]:
    """A captioning evaluation: metrics, and per image a generated caption (right for even keys) and 2 references."""
    common = {"run_id": f"eval-{checkpoint}", "checkpoint": checkpoint, "dataset": str(shards), "task": "captioning",
              "strategy": "beam"}
    metrics = [{**common, "metric": m, "value": v, "time": now()}
               for m, v in {"bleu_4": 0.31, "rouge_l": 0.52, "cider": 1.23, "num_samples": len(labels)}.items()]
    predictions = [{**common, "key": key, "caption": caption(label if i % 2 == 0 else (label + 1) % 10),
                    "references": [caption(label), f"the digit {caption(label).split()[-1]}"]}
                   for i, (key, label) in enumerate(labels.items())]
    return metrics, predictions


def _distance_rows() -> list[dict]:
    selfs = {"digits": 0.1, "photos": 0.2, "clips": 0.3}
    rows = []
    for space in ("clip_image", "fasttext_text"):
        for i, a in enumerate(DATASETS):
            for b in DATASETS[i:]:
                value = selfs[a] if a == b else 1.0 + i + len(b) / 10
                rows.append({"run_id": "dist-1", "dataset_a": a, "dataset_b": b, "space": space, "method": "exact",
                             "value": value, "num_samples": 50, "self_a": selfs[a], "self_b": selfs[b],
                             "excess": value - (selfs[a] + selfs[b]) / 2, "not_optimal": False, "time": now()})
    return rows


def _ingest_rows() -> tuple[list[dict], list[dict]]:
    dataset = "/data/laion"
    shards = [{"run_id": "ingest-1", "dataset_uri": dataset, "shard_id": s, "num_samples": 10, "num_success": 7,
               "num_failed": 3, "num_duplicates": 1, "bytes_written": 123456, "duration_s": 2.5, "written_at": now()}
              for s in range(2)]
    samples, written_at = [], [now(), now()]  # one time per shard write, as the crawler records it
    for i in range(20):
        domain = ("a.example", "b.example", "c.example")[i % 3]
        status, error = ERRORS.get((domain, i % 2), ("success", None))
        samples.append({"run_id": "ingest-1", "dataset_uri": dataset, "shard_id": i // 10, "key": f"{i:09d}",
                        "url": f"http://{domain}/{i}.jpg", "domain": domain, "status": status, "error_message": error,
                        "written_at": written_at[i // 10]})
    return shards, samples


def fill_store(results_uri: str, shards: Path) -> None:
    """Rows for every section: two training runs, two checkpoints' evaluations, distances and an ingest."""
    write_digit_shards(shards, num_shards=1, per_shard=6)
    labels = {f"00000{i:04d}": int(label) for i, label in enumerate(digit_images()[1][:6])}  # the shard's keys
    ingest_shards, ingest_samples = _ingest_rows()
    with ResultsWriter(StoreConfig(results_uri=results_uri)) as writer:
        writer.append("train_metrics", _train_rows("run-small", 60, 2.0) + _train_rows("run-large", 80, 3.0))
        for checkpoint, acc1 in (("ckpt-a", 0.67), ("ckpt-b", 0.5)):
            writer.append("eval_results", _eval_rows(checkpoint, acc1, str(shards)))
            writer.append("predictions", _zeroshot_predictions(checkpoint)
                          + _retrieval_predictions(checkpoint, shards, labels))
            captioning_metrics, captions = _captioning_rows(checkpoint, shards, labels)
            writer.append("eval_results", captioning_metrics)
            writer.append("predictions", captions)
        writer.append("dataset_distances", _distance_rows())
        writer.append("ingest_shards", ingest_shards)
        writer.append("ingest_samples", ingest_samples)
        writer.append("curation_runs", [{"run_id": "cur-1", "data": str(shards), "output_uri": str(shards / "gone"),
                                         "scorer": None, "total": 6, "kept": 5, "num_shards": 1, "digest": "d" * 64,
                                         "time": now()}])
        writer.append("curation_filters", [{"run_id": "cur-1", "position": 1, "filter": "dedup",
                                            "rule": "phash duplicate (threshold 10)", "removed_alone": 1,
                                            "removed_beyond_others": 1, "remaining_after": 5, "total": 6,
                                            "time": now()}])
