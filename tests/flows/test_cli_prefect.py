"""A CLI verb with no PREFECT_API_URL boots its own temporary Prefect server, and leaves nothing running."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.shards import write_digit_shards

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def test_a_verb_without_a_prefect_server_starts_one_and_stops_it(tmp_path):
    from gensim.test.utils import datapath

    write_digit_shards(tmp_path / "a", num_shards=1, per_shard=20)
    write_digit_shards(tmp_path / "b", num_shards=1, per_shard=20, offset=500)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    process = subprocess.Popen(
        [str(BIN / "clipline"), "distance", "--datasets", f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", "--space",
         "fasttext_text", "--text-model", datapath("lee_fasttext_new.bin"), "--results-uri",
         str(tmp_path / "results"), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert '"dataset_a": "a"' in stdout
    assert (tmp_path / "prefect" / "prefect.db").exists()  # the server's SQLite database, in PREFECT_HOME
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no process of the CLI's session (the uvicorn server) outlived it


def test_bad_input_reads_as_one_clear_line_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    result = subprocess.run(
        [str(BIN / "clipline"), "train", "--data", str(tmp_path / "nonexistent" / "shards"), "--out",
         str(tmp_path / "run"), "--steps", "2", "--results-uri", str(tmp_path / "results")],
        env=env, capture_output=True, text=True, timeout=600)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) <= 5 and "Traceback" not in result.stderr, result.stderr
    assert "telemetry" not in result.stderr  # the temporary server runs with analytics off
    assert lines[-1].startswith("error: 1 of 1 shards do not exist")
    assert sum("shards do not exist" in line for line in lines) == 2  # the flow's line, then the CLI's


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_temporary_server_dies_with_a_cli_killed_by_sigkill(tmp_path):
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    cli = subprocess.Popen([str(BIN / "clipline"), "train", "--data", str(tmp_path / "none"), "--out",
                            str(tmp_path / "run"), "--steps", "2"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (servers := _children(cli.pid)) and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.05)
        assert servers, "the CLI started no server"
        cli.kill()  # SIGKILL: atexit never runs
        cli.wait()
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in servers), "the server outlived its CLI"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGKILL)
