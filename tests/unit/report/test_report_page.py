"""The report page: every section filled from a real store, "no runs yet" on an empty one, nothing fetched."""

from __future__ import annotations

import datetime
import re

from report_store import fill_store

from clipline.flows.cli import main
from clipline.pipelines import storage
from clipline.pipelines.config import ReportConfig, StoreConfig
from clipline.pipelines.report.page import SECTIONS, render_page, write_report
from clipline.pipelines.store.writer import ResultsWriter, now


def _sections(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))


def test_every_section_of_a_filled_store_shows_its_data(filled_report):
    sections = _sections(filled_report.read_text())
    assert list(sections) == list(SECTIONS)
    assert not [name for name, body in sections.items() if "No runs yet" in body]
    assert sections["training"].count("<svg") == 1 and "run-large" in sections["training"]
    assert "ckpt-a" in sections["leaderboard"] and "0.67" in sections["leaderboard"]
    assert sections["per-class"].count("<tr>") == 1 + 6  # header + 3 classes x 2 checkpoints
    assert sections["confusion"].count("data:image/png") == 2
    assert sections["retrieval"].count('class="thumb"') == 12  # 6 images x 2 checkpoints, each resolved
    assert sections["captioning"].count('class="thumb"') == 12 and "the digit" in sections["captioning"]
    assert sections["captioning"].count('<li class="hit">') == 6  # the even keys' captions equal a reference
    assert "1.23" in sections["leaderboard"]  # CIDEr
    assert sections["distances"].count("data:image/png") == 4  # W1 and excess, per space
    assert "<svg" in sections["ingest"] and "HTTP 404" in sections["ingest"]


def test_page_is_self_contained(filled_report):
    page = filled_report.read_text()
    assert "<script" not in page
    assert not re.findall(r'(?:src|href)="(?!data:|#)', page)  # every resource inline, every link an anchor


def test_empty_store_says_no_runs_yet_in_every_section(empty_report):
    sections = _sections(empty_report.read_text())
    assert list(sections) == list(SECTIONS)
    assert all("No runs yet" in body for body in sections.values())


def test_retrieval_examples_whose_dataset_is_gone_say_so_and_skip_thumbnails(tmp_path):
    results = str(tmp_path / "results")
    common = {"run_id": "r", "checkpoint": "c", "dataset": str(tmp_path / "gone"), "task": "retrieval",
              "strategy": None}
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("eval_results", [{**common, "metric": "image_retrieval_recall@1", "value": 1.0, "time": now()}])
        writer.append("predictions", [{**common, "key": "k1", "true_label": "a cat", "predicted_label": "a cat",
                                       "correct": True, "top5_labels": ["a cat"], "top5_scores": [0.9]}])
    retrieval = _sections(render_page(ReportConfig(store=StoreConfig(results_uri=results))))["retrieval"]
    assert "Thumbnails skipped" in retrieval and "does not exist" in retrieval
    assert "a cat" in retrieval and 'class="thumb"' not in retrieval


def test_a_long_table_shows_its_first_rows_and_counts_the_rest_and_curves_draw_the_newest_runs(tmp_path):
    """70 domains of 1..70 samples: the table shows the 50 largest and says 20 more; 12 training runs, the
    curves draw the 10 newest (--max-runs), however the store's files are ordered."""
    from clipline.pipelines.report.html import MAX_TABLE_ROWS

    results = str(tmp_path / "results")
    samples, start = [], now()
    for d in range(70):
        samples += [{"run_id": "i", "dataset_uri": "/data", "shard_id": 0, "key": f"{d:03d}{i:03d}",
                     "url": f"http://d{d:02d}.example/{i}", "domain": f"d{d:02d}.example", "status": "success",
                     "written_at": start} for i in range(d + 1)]
    runs = [f"run-{n:02d}" for n in range(12)]
    with ResultsWriter(StoreConfig(results_uri=results)) as writer:
        writer.append("ingest_shards", [{"run_id": "i", "dataset_uri": "/data", "shard_id": 0, "written_at": start,
                                         "num_samples": len(samples), "num_success": len(samples), "num_failed": 0,
                                         "num_duplicates": 0}])
        writer.append("ingest_samples", samples)
        for n in (5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6):  # written out of order; run-11 has the latest time
            writer.append("train_metrics", [{"run_id": runs[n], "step": step, "name": "loss", "value": 1.0 / step,
                                             "time": start + datetime.timedelta(minutes=n, seconds=step)}
                                            for step in range(1, 4)])
    sections = _sections(render_page(ReportConfig(store=StoreConfig(results_uri=results), max_runs=10)))
    ingest = sections["ingest"]
    domain_table = ingest[ingest.index("By domain"):ingest.index("Top errors")]
    shown = re.findall(r"<td>/data</td><td>(d\d\d)\.example</td><td>(\d+)</td>", domain_table)
    assert len(shown) == MAX_TABLE_ROWS
    assert shown == [(f"d{d:02d}", str(d + 1)) for d in range(69, 69 - MAX_TABLE_ROWS, -1)]  # largest first
    assert f"{70 - MAX_TABLE_ROWS} more rows not shown" in domain_table
    training = sections["training"]
    assert [r for r in runs if r in training] == runs[2:]  # the 10 newest, not run-00 and run-01


def test_cli_writes_the_report_and_says_where(tmp_path, capsys):
    out = tmp_path / "out" / "report.html"
    assert main(["report", "--results-uri", str(tmp_path / "results"), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert str(out) in capsys.readouterr().out


def test_report_reads_a_store_on_s3_and_writes_the_page_there(s3_uri, tmp_path):
    fill_store(f"{s3_uri}/results", tmp_path / "shards")
    config = ReportConfig(output_uri=f"{s3_uri}/reports/report.html",
                          store=StoreConfig(results_uri=f"{s3_uri}/results"))
    sections = _sections(storage.read_text(write_report(config)))
    assert not [name for name, body in sections.items() if "No runs yet" in body]
