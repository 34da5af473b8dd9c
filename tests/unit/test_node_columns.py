"""Every fan-out stage's rows say where they ran: a `node` column of '<ip>/<Ray node id>' inside Ray (checked
against Ray's own node table), the host name outside it."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import ray

from clipline.pipelines.config import DatasetDistanceConfig, IngestConfig, ReaderConfig
from clipline.pipelines.config.base import StoreConfig
from clipline.pipelines.crawl.status import record_shard
from clipline.pipelines.distance.embed import record_embedding
from clipline.pipelines.eval.results import EvalResult, metric_rows
from clipline.pipelines.store.query import named_query_sql, run_query
from clipline.pipelines.store.writer import file_schema

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import a test module

STATS = {"count": 2, "successes": 1, "duplicates": 0, "bytes": 10, "duration": 0.5}


@pytest.mark.parametrize("table", ["ingest_shards", "train_workers", "eval_results", "dataset_embeddings"])
def test_fan_out_tables_declare_a_node_column(table):
    assert file_schema(table).field("node").type == "string"


def _record_rows(results_uri: str) -> None:
    """What a shard task and an embedding task write, done where this runs."""
    config = IngestConfig(reader=ReaderConfig(url_list_uri="unused.parquet"), output_uri="unused",
                          store=StoreConfig(results_uri=results_uri))
    record_shard(config, "run-a", 7, STATS, samples=[])
    distance = DatasetDistanceConfig(datasets=["a=unused", "b=unused"], image_encoder="unused",
                                     store=StoreConfig(results_uri=results_uri))
    record_embedding(np.zeros((3, 4), np.float32), "a", distance, "run-a")


@ray.remote(num_cpus=1)
def _record_rows_task(results_uri: str) -> None:
    _record_rows(results_uri)


def _nodes(results_uri: str) -> set[str]:
    rows = run_query(results_uri, "SELECT node FROM ingest_shards UNION ALL SELECT node FROM dataset_embeddings").rows
    assert len(rows) == 2
    return {node for (node,) in rows}


def test_rows_written_in_a_ray_task_name_the_tasks_node(ray_cluster, tmp_path):
    results_uri = str(tmp_path / "results")
    ray.get(_record_rows_task.remote(results_uri))
    [node] = _nodes(results_uri)
    ip, node_id = node.split("/")
    alive = {(n["NodeManagerAddress"], n["NodeID"]) for n in ray.nodes() if n["Alive"]}
    assert (ip, node_id) in alive


def test_eval_metric_rows_carry_the_node(ray_cluster):
    result = EvalResult(checkpoint="c", dataset="d", task="zeroshot", strategy=None, metrics={"acc1": 1.0},
                        num_samples=1, num_skipped=0)
    node = ray.get(ray.remote(num_cpus=1)(metric_rows).remote("run-a", result))[0]["node"]
    assert node.split("/")[1] in {n["NodeID"] for n in ray.nodes()}


def test_outside_ray_the_node_is_the_host_name(tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    results_uri = str(tmp_path / "results")
    _record_rows(results_uri)
    assert _nodes(results_uri) == {socket.gethostname()}


def test_work_by_node_counts_each_unit_on_its_node(tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    results_uri = str(tmp_path / "results")
    _record_rows(results_uri)
    _record_rows(results_uri)  # the same shard and embedding written again (a rerun): still one unit each
    rows = run_query(results_uri, named_query_sql("work_by_node")).rows
    assert sorted((ip, stage, units) for ip, _, stage, units, _ in rows) == [
        (socket.gethostname(), "distance embeddings", 1), (socket.gethostname(), "ingest", 1)]
