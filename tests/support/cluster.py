"""A handle on a cluster started by infra/local-cluster.sh: its environment, and node kills and additions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.net import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infra" / "local-cluster.sh"


@dataclass(frozen=True)
class LocalCluster:
    settings: dict[str, str]  # CLUSTER_* variables naming this cluster (namespaces, subnet, state folder)
    env: dict[str, str]  # what `up` printed: RAY_ADDRESS, AWS_*, CLIPLINE_HOME, CLUSTER_ALLOWED_NETWORKS

    @classmethod
    def start(cls, state_dir: Path, num_workers: int) -> LocalCluster:
        pid = os.getpid() % 10000
        settings = {"CLUSTER_NAME": f"ct{pid}", "CLUSTER_SUBNET": f"10.78.{pid % 250}",
                    "CLUSTER_DIR": str(state_dir / "state"), "CLUSTER_S3_PORT": str(free_port()),
                    # Ray's GCS checks each node every second instead of every 3 (5 misses: dead), so that a killed
                    # node is noticed in seconds; a live node still has Ray's 10 s to answer each check.
                    "RAY_health_check_period_ms": "1000"}
        try:
            out = cls._run(settings, "up", str(num_workers), timeout=300)
        except BaseException:  # a timeout kills the script before its own clean-up
            cls._run(settings, "down")
            raise
        env = dict(line.removeprefix("export ").split("  #")[0].strip().split("=", 1)
                   for line in out.splitlines() if line.startswith("export "))
        return cls(settings, env)

    @staticmethod
    def _run(settings: dict[str, str], *args: str, timeout: float = 120) -> str:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | settings
        done = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"local-cluster.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done.stdout

    @property
    def driver_ip(self) -> str:
        return self.settings["CLUSTER_SUBNET"] + ".1"

    def node_ip(self, worker: int) -> str:
        return f"{self.settings['CLUSTER_SUBNET']}.{10 + worker}"

    def actor_ips(self) -> dict[str, str]:
        """The node address of every live actor on the cluster, by class name (asked of the cluster's GCS, as
        a second driver on the bridge)."""
        return self._ask("from ray._private.state import state\n"
                         "answer = {a['ActorClassName']: a['Address']['IPAddress']\n"
                         "          for a in state.actor_table(None).values() if a['State'] == 'ALIVE'}\n")

    def alive_nodes(self) -> set[str]:
        """The IPs of the nodes that are alive and offer CPUs (head and worker nodes; not the driver's)."""
        return set(self._ask("answer = [n['NodeManagerAddress'] for n in ray.nodes()\n"
                             "          if n['Alive'] and n['Resources'].get('CPU', 0) > 0]\n"))

    def _ask(self, body: str):
        """Run `body` in a second driver on the bridge (joined to the cluster's GCS); return its `answer`."""
        script = ("import json, ray\n"
                  "ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)\n"
                  f"{body}print(json.dumps(answer))\n")
        done = subprocess.run([sys.executable, "-c", script], env=os.environ | self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def worker_of(self, ip: str) -> int:
        """The worker node index of a node IP (the head is not a worker node)."""
        index = int(ip.rsplit(".", 1)[1]) - 10
        assert ip == self.node_ip(index) and index >= 1, f"{ip} is not a worker node of this cluster"
        return index

    def kill_node(self, worker: int) -> None:
        """SIGKILL every process of worker node `worker`, through its namespace."""
        self._run(self.settings, "kill-node", str(worker))

    def add_node(self) -> None:
        self._run(self.settings, "add-node", timeout=180)

    def ensure_worker_nodes(self, count: int) -> None:
        """Add worker nodes until `count` are alive: a test that needs the cluster whole after others killed
        nodes (the session's cluster is shared)."""
        missing = count - len(self.alive_nodes() - {self.node_ip(0)})
        for _ in range(missing):
            self.add_node()

    def stop(self) -> None:
        self._run(self.settings, "down")
