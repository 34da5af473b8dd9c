"""CPUs per Ray worker (pipelines/compute.py fit_cpus): the cluster's CPUs split between the workers, but never
more than lets every worker be placed on a node; a larger request would wait for resources forever."""

from __future__ import annotations

import pytest

from clipline.pipelines.compute import fit_cpus


@pytest.mark.parametrize(("node_cpus", "workers", "expected"), [
    ([2], 1, 2),  # one machine: the worker takes its cores
    ([2], 2, 1),
    ([2], 3, 1),  # more workers than cores: at least one CPU each
    ([1, 1, 1], 1, 1),  # three 1-CPU nodes: no node can host a 3-CPU worker
    ([0, 1, 1, 1], 2, 1),  # a CPU-less head or driver node hosts none
    ([4, 4], 2, 4),
    ([8], 3, 2),  # 3 x 2 CPUs fit in 8; 3 x 3 do not
    ([4, 2], 2, 2),  # 2 x 3 would need two nodes of 3: only one has them
    ([16, 1], 2, 8),  # both workers of 8 on the large node
])
def test_each_worker_gets_the_most_cpus_that_still_let_all_workers_be_placed(node_cpus, workers, expected):
    assert fit_cpus(node_cpus, workers) == expected
    # the workers really fit: count the slots node by node
    assert sum(n // expected for n in node_cpus) >= workers or expected == 1
