"""A driver joined to a cluster says in its log when the cluster's head is gone (Ray's own message names no
address, and comes a minute later)."""

from __future__ import annotations

import logging
import socket
import time

from clipline.pipelines.compute import watch_head


def test_a_driver_on_a_cluster_names_the_head_it_lost_in_its_log(caplog):
    """The head's GCS port answers, then stops answering: after `misses` failed probes the log names the
    address and says what to do; while it answers, nothing is logged."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    with caplog.at_level(logging.ERROR, logger="clipline.pipelines.compute"):
        watcher = watch_head(address, probe_s=0.05, misses=3)
        time.sleep(0.5)  # ten probes answered
        assert not caplog.records and watcher.is_alive()
        listener.close()
        watcher.join(timeout=10)
    assert not watcher.is_alive()
    (record,) = caplog.records
    assert address in record.getMessage() and "make cluster-up" in record.getMessage()
