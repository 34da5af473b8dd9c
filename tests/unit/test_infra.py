"""infra/: the configs parse, have what Ray, KubeRay and Prefect read, and the image installs the project as
the Makefile does. Nothing is deployed here."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from prefect.utilities.templating import apply_values, find_placeholders
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
RAY_PIN = re.search(r'"ray\[train\]==([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)


def _yaml(name: str) -> dict:
    return yaml.safe_load((INFRA / name).read_text())


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (INFRA / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_ray_cluster_config_passes_rays_own_validation():
    config = prepare_config(_yaml("ray-cluster.yaml"))  # fills defaults as `ray up` does
    validate_config(config)
    assert config["head_node_type"] in config["available_node_types"]
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert config["docker"]["image"]


def test_ray_validation_rejects_a_broken_cluster_config():
    config = _yaml("ray-cluster.yaml")
    config["head_node_type"] = "nowhere"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(copy.deepcopy(config)))


def test_kuberay_manifest_declares_a_raycluster_of_the_pinned_ray():
    manifest = _yaml("kuberay-raycluster.yaml")
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    spec = manifest["spec"]
    assert spec["rayVersion"] == RAY_PIN  # a Ray Client and its cluster must run the same Ray
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert 10001 in {p["containerPort"] for p in head["ports"]}  # the Ray Client port RAY_ADDRESS names
    groups = spec["workerGroupSpecs"]
    assert groups and all(g["groupName"] and g["template"]["spec"]["containers"][0]["image"] for g in groups)
    assert all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in groups)


def test_dockerfile_installs_the_project_only_through_the_makefiles_install_target():
    runs = [args for op, args in _dockerfile_instructions() if op == "RUN"]
    assert not [r for r in runs if re.search(r"\bpip\b|\buv\b|\bconda\b", r)]  # no install step of its own
    installs = [r for r in runs if "make install" in r]
    assert installs and installs[-1] == "make install VENV=/opt/venv"
    env = " ".join(args for op, args in _dockerfile_instructions() if op == "ENV")
    assert "PATH=/opt/venv/bin:" in env  # the image's python, ray and prefect are the venv's


def test_makefile_install_target_runs_with_the_dockerfiles_arguments(tmp_path):
    """`make -n` prints what the image's `make install` would run: the Makefile's pinned pip steps."""
    command = shlex.split(next(args for op, args in _dockerfile_instructions()
                               if op == "RUN" and args.startswith("make install")))
    venv = str(tmp_path / "venv")  # a fresh venv, as in the image, so every step is printed
    args = [a if not a.startswith("VENV=") else f"VENV={venv}" for a in command]
    printed = subprocess.run([*args, "-n"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert f"{venv}/bin/pip install -e '.[dev]'" in printed
    assert "webdataset==0.2.86" in printed
    assert "--no-build-isolation -e ." in printed


def test_local_cluster_refuses_a_venv_that_its_nodes_cannot_see(tmp_path):
    """Each namespaced node mounts its own /dev/shm: a venv there is refused before anything starts."""
    if os.geteuid() != 0:
        pytest.skip("namespace mode (and so this check) needs root")
    state = tmp_path / "state"
    done = subprocess.run(["bash", str(INFRA / "local-cluster.sh"), "up", "1"], capture_output=True, text=True,
                          env={**os.environ, "VENV": "/dev/shm/some-checkout/.venv", "CLUSTER_DIR": str(state),
                               "CLUSTER_NAME": "cvt"}, timeout=60)
    assert done.returncode == 1
    assert "/dev/shm/some-checkout/.venv lies under /dev/shm" in done.stderr
    assert not state.exists()  # refused before any namespace, bridge or S3 server


def _in_node_mounts(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", str(INFRA / "node-mounts.sh"),
                           *args], capture_output=True, text=True, timeout=60)


def test_a_node_sees_a_checkout_under_tmp_and_nothing_else_of_the_drivers_tmp():
    """A clone under /tmp: a node's fresh /tmp still holds the checkout and its venv (the software every machine
    has), but not the driver's other files there, nor its /dev/shm; the driver's own /tmp is untouched."""
    if os.geteuid() != 0:
        pytest.skip("mount namespaces need root")
    with tempfile.TemporaryDirectory(dir="/tmp") as checkout, tempfile.TemporaryDirectory(dir="/tmp") as other, \
            tempfile.NamedTemporaryFile(dir="/dev/shm") as shm:
        (Path(checkout) / ".venv" / "bin").mkdir(parents=True)
        (Path(checkout) / ".venv" / "bin" / "marker").write_text("venv")
        (Path(other) / "secret").write_text("driver's")
        script = (f"ls -A /tmp; echo ---; cat {checkout}/.venv/bin/marker; echo; ls -A /dev/shm; echo ---; "
                  f"ls {other} 2>&1 || true; echo ---; ls -A /mnt")
        mounts = Path("/proc/self/mounts").read_text()
        done = _in_node_mounts(checkout, f"{checkout}/.venv", "--", "sh", "-c", script)
        assert done.returncode == 0, done.stderr
        listing, seen, missing, mnt = done.stdout.split("---\n")
        assert listing.split() == [Path(checkout).name]  # only the kept folder
        assert seen.split() == ["venv"]  # read through the node's /tmp; its /dev/shm is empty
        assert "No such file" in missing
        assert sorted(mnt.split()) == sorted(os.listdir("/mnt"))  # the staging tmpfs is gone from the node's /mnt
        # Outside the namespace: the driver's /tmp, /dev/shm and mounts are as they were.
        assert (Path(other) / "secret").read_text() == "driver's" and Path(shm.name).exists()
        assert Path("/proc/self/mounts").read_text() == mounts


def test_a_node_keeps_folders_outside_tmp_as_they_are_and_refuses_dev_shm():
    if os.geteuid() != 0:
        pytest.skip("mount namespaces need root")
    done = _in_node_mounts("/usr", "--", "sh", "-c", "ls -A /tmp; test -x /usr/bin/env && echo usr")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["usr"]  # an empty /tmp; /usr in place
    refused = _in_node_mounts("/dev/shm/venv", "--", "true")
    assert refused.returncode == 1 and "/dev/shm/venv lies under /dev/shm" in refused.stderr


def test_work_pool_template_declares_every_variable_it_uses():
    template = json.loads((INFRA / "prefect-k8s-work-pool.json").read_text())
    assert set(template) == {"job_configuration", "variables"}
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    declared = set(template["variables"]["properties"])
    assert used == declared


def test_work_pool_template_fills_into_a_kubernetes_job():
    template = json.loads((INFRA / "prefect-k8s-work-pool.json").read_text())
    defaults = {name: p["default"] for name, p in template["variables"]["properties"].items() if "default" in p}
    job = apply_values(template["job_configuration"], {**defaults, "name": "flow-run"})["job_manifest"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert job["kind"] == "Job" and job["metadata"]["generateName"] == "flow-run-"
    assert container["image"] == "clipline-worker:latest"
    assert container["envFrom"] == [{"secretRef": {"name": "clipline-s3"}}]
    assert defaults["env"]["CLIPLINE_HOME"].startswith("s3://")
    assert defaults["env"]["RAY_ADDRESS"].startswith("ray://clipline-head-svc:")
    assert "{{" not in json.dumps(container)


def test_cluster_nodes_and_flow_runs_use_one_worker_image():
    kuberay = _yaml("kuberay-raycluster.yaml")["spec"]
    pods = [kuberay["headGroupSpec"], *kuberay["workerGroupSpecs"]]
    pool = json.loads((INFRA / "prefect-k8s-work-pool.json").read_text())["variables"]["properties"]
    images = {_yaml("ray-cluster.yaml")["docker"]["image"], pool["image"]["default"],
              *(c["image"] for p in pods for c in p["template"]["spec"]["containers"])}
    assert images == {"clipline-worker:latest"}
