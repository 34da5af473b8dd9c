"""Session-wide fixtures: an isolated clipline home and a real S3-speaking server (moto)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Before anything imports Prefect: a private Prefect home per test session, and
# time for its server to start on 2 cores.
os.environ["PREFECT_HOME"] = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"clipline-prefect-{os.getpid()}")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


from support.net import free_port  # noqa: E402 - after the environment above

_SESSION_PID = os.getpid()


def _interrupt(signum, frame):
    if os.getpid() != _SESSION_PID:  # a forked child (a DataLoader worker): SIGTERM's usual end
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    raise KeyboardInterrupt(f"signal {signum}")


# SIGTERM ends a session like Ctrl-C, through the session fixtures' teardown: tests/suite.sh stops its second
# session so, and that session's cluster (network namespaces, Ray nodes) must not outlive it.
signal.signal(signal.SIGTERM, _interrupt)


_CPU_REPORT = os.environ.get("CLIPLINE_TEST_CPU_REPORT")  # a file: CPU seconds per test (support/cpu_report.py)
_meter = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _meter
    if not _CPU_REPORT:
        yield
        return
    from support.cpu_report import Meter

    _meter = _meter or Meter()
    started = _meter.start()
    yield
    _meter.stop(item.nodeid, started)


def pytest_terminal_summary(terminalreporter):
    if _meter:
        _meter.write(_CPU_REPORT)
        terminalreporter.section(f"CPU per test (all of it in {_CPU_REPORT})")
        for line in _meter.top_lines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def clipline_home(tmp_path_factory) -> Path:
    """Every test session writes under its own CLIPLINE_HOME, never ./.clipline."""
    home = tmp_path_factory.mktemp("clipline-home")
    os.environ["CLIPLINE_HOME"] = str(home)
    os.environ.pop("CLIPLINE_RESULTS", None)
    return home


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    """moto in server mode on loopback: a real HTTP S3 endpoint for the whole session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto server did not start within 60 s")
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    })
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_uri(s3_endpoint) -> str:
    """A fresh, empty bucket on the moto server, as an s3:// URI."""
    import s3fs

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint).mkdir(bucket)
    return f"s3://{bucket}"


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the session; subprocesses (the CLI) use it too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        yield PREFECT_API_URL.value()
        os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the session (2 CPUs, like CI); subprocesses join it."""
    import ray

    from clipline.pipelines.compute import ensure_ray

    os.environ.pop("RAY_ADDRESS", None)
    ensure_ray(num_cpus=2)
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    yield
    os.environ.pop("RAY_ADDRESS", None)
    ray.shutdown()


@pytest.fixture(scope="session")
def trap():
    """A loopback listener (127.0.0.2) that counts connections: the target of every must-refuse redirect."""
    from support.net import Trap

    listener = Trap()
    yield listener
    listener.close()


@pytest.fixture(scope="session")
def http_server():
    """The crawl tests' HTTP server: real photos plus fault routes, on loopback."""
    from support.http_server import TestHTTPServer

    with TestHTTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory):
    """A real Ray cluster for the session: head + 2 worker nodes from infra/local-cluster.sh, each in its own
    network and mount namespace (root only), with moto S3 on their bridge. Yields its handle; the tests'
    own process joins it only through subprocesses (RAY_ADDRESS in `cluster.env`)."""
    from support.cluster import LocalCluster

    if os.geteuid() != 0:
        pytest.skip("the cluster tests need root for network and mount namespaces")
    cluster = LocalCluster.start(tmp_path_factory.mktemp("cluster"), num_workers=2)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def caption_digits(tmp_path_factory) -> Path:
    """Digit shards with templated captions: train/{00000..00003}.tar and held-out/00000.tar (500 digits)."""
    from support.captioning import write_caption_digits

    return write_caption_digits(tmp_path_factory.mktemp("caption-digits"))


@pytest.fixture(scope="session")
def digits_clip(caption_digits, tmp_path_factory) -> str:
    """A CLIP that tells digits apart (zero-shot top-1 0.884 on the held-out 500), trained once on
    `caption_digits` in about 45 s: the teacher of the distillation test and the frozen CLIP of ClipCap's.
    Seed 1: 400 steps are near the edge, and seed 0 with these two loader processes reaches only 0.784."""
    from support.captioning import digits_clip_config, fit_beside_loaders

    config = digits_clip_config(caption_digits, tmp_path_factory.mktemp("digits-clip") / "run", seed=1,
                                data_workers=2)
    return fit_beside_loaders(config, "digits-clip")["checkpoint"]


@pytest.fixture(scope="session")
def coca_checkpoint(caption_digits, tmp_path_factory) -> str:
    """A tiny CoCa briefly trained on `caption_digits` by `clipline train --kind coca`'s code (Ray Train local
    mode): its checkpoint loads and generates, its captions are not yet right (test_coca's accuracy test trains
    longer)."""
    from clipline.pipelines.train.trainer import fit, plan_training
    from support.captioning import coca_config

    config = coca_config(caption_digits, tmp_path_factory.mktemp("coca") / "run")
    return fit(config, plan_training(config), "coca-unit-run")["checkpoint"]
