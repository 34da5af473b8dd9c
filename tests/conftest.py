"""Session-wide fixtures: an isolated clipline home and a real S3-speaking server (moto)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
