"""Ray is the one compute engine: start it in-process, or join the cluster at $RAY_ADDRESS."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)
_STARTING = threading.Lock()  # the pipeline's stages run in threads and may all start Ray at once


def ensure_ray(num_cpus: int | None = None) -> None:
    """Start (or join) Ray once per process; later calls are free."""
    with _STARTING:
        _start(num_cpus)


NODE_IP_VARIABLE = "CLIPLINE_RAY_NODE_IP"


def _this_node(address: str | None) -> dict:
    """ray.init's node address for a driver joining a cluster, from $CLIPLINE_RAY_NODE_IP when set.

    Where several Ray nodes run on one machine (infra/local-cluster.sh: one network namespace each), a driver
    left to choose attaches to the head's node and tells other nodes the head's address as its own: they
    then cannot reach it to fetch what it put in the object store (Ray Train's training function: workers
    on other nodes waited forever). Naming the driver's own node avoids that; on real hosts it is not needed.
    """
    node_ip = os.environ.get(NODE_IP_VARIABLE)
    return {"_node_ip_address": node_ip} if address and node_ip else {}


def _start(num_cpus: int | None) -> None:
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address or None, num_cpus=None if address else num_cpus, include_dashboard=False,
                 configure_logging=False, log_to_driver=True, **_this_node(address))
    except ConnectionError as e:
        raise ClipLineError(f"cannot reach the Ray cluster at RAY_ADDRESS={address}: {e}",
                            "start the cluster, fix RAY_ADDRESS, or unset it to run locally") from e
    log.info("ray: %s with %s CPUs", address or "local", ray.cluster_resources().get("CPU"))
    if address and ":" in address and "://" not in address:
        watch_head(address)


HEAD_PROBE_S = 5.0  # how often a driver on a cluster checks that the head's GCS port still answers
HEAD_MISSES = 3  # failed checks in a row before the run's log says the head is lost


def watch_head(address: str, probe_s: float = HEAD_PROBE_S, misses: int = HEAD_MISSES) -> threading.Thread:
    """Name a lost head in the run's log. Without an external Redis, Ray's GCS keeps no state past its head,
    and Ray ends a driver that loses it with only "Failed to connect to GCS" about 60 s later; this says which
    cluster went and what to do, while the run's log is still being written."""
    host, _, port = address.rpartition(":")

    def probe() -> None:
        failed = 0
        while failed < misses:
            time.sleep(probe_s)
            try:
                socket.create_connection((host, int(port)), timeout=probe_s).close()
                failed = 0
            except OSError:
                failed += 1
        log.error("lost the Ray cluster's head at %s (RAY_ADDRESS): its GCS has not answered for %.0f s. Without "
                  "an external Redis for GCS fault tolerance the cluster's state is gone and this run will stop. "
                  "Start the cluster again (make cluster-up) and rerun: stages that finished come from the cache.",
                  address, probe_s * misses)

    thread = threading.Thread(target=probe, name="clipline-head-watch", daemon=True)
    thread.start()
    return thread


def current_node() -> str:
    """Where this code runs, for the store's `node` columns: '<ip>/<Ray node id>' inside Ray (a driver or a
    task), the host name outside it."""
    if not ray.is_initialized():
        return socket.gethostname()
    node_id = ray.get_runtime_context().get_node_id()
    return f"{_node_ip(node_id)}/{node_id}"


@functools.cache
def _node_ip(node_id: str) -> str:
    """The node's address as the cluster knows it. (`ray.util.get_node_ip_address()` in a driver gives the
    address it routes to the head from, not its node's.)"""
    return next(n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id)


def on_driver_node() -> NodeAffinitySchedulingStrategy:
    """Pin an actor to the driver's node: a driver's helper actor (a progress counter) must not live on a
    worker node that may be lost, and dies with the driver anyway."""
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def cpus_per_worker(workers: int) -> int:
    """CPUs for each of `workers` tasks or actors that run at once on the cluster (so that torch's intra-op
    threads do not oversubscribe the cores): the cluster's CPUs split between them, but only as many as lets all
    of them be placed on the alive nodes. A request larger than every node would wait for resources forever
    (three 1-CPU nodes cannot host one worker of 3 CPUs)."""
    return fit_cpus([int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]], workers)


def fit_cpus(node_cpus: Sequence[int], workers: int) -> int:
    """The most CPUs (at least 1) each of `workers` can take with all of them placed on nodes of `node_cpus`."""
    for cpus in range(sum(node_cpus) // max(workers, 1), 1, -1):
        if sum(n // cpus for n in node_cpus) >= workers:
            return cpus
    return 1
