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
                    "CLUSTER_DIR": str(state_dir / "state"), "CLUSTER_S3_PORT": str(free_port())}
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
        script = ("import json, ray\n"
                  "from ray._private.state import state\n"
                  "ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)\n"
                  "print(json.dumps({a['ActorClassName']: a['Address']['IPAddress']\n"
                  "                  for a in state.actor_table(None).values() if a['State'] == 'ALIVE'}))\n")
        done = subprocess.run([sys.executable, "-c", script], env=os.environ | self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def kill_node(self, worker: int) -> None:
        """SIGKILL every process of worker node `worker`, through its namespace."""
        self._run(self.settings, "kill-node", str(worker))

    def add_node(self) -> None:
        self._run(self.settings, "add-node", timeout=180)

    def stop(self) -> None:
        self._run(self.settings, "down")
