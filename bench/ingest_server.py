"""A static file server on loopback for the ingest benchmark.

nginx (Debian's package) is preferred: one worker process, access log off, run in
the foreground as a child process on 127.0.0.1 (or another local address: a
cluster bridge's, bench/cluster.py) and a free port. If nginx is not
installed and `apt-get install -y nginx` does not work, Python's
ThreadingHTTPServer (`python -m http.server`) stands in; it is much slower and may
become the bottleneck, which the report then says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bench.ingest_server")

NGINX_CONF = """\
daemon off;
worker_processes 1;
{user}
pid {run}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    types {{ image/jpeg jpg; }}
    default_type application/octet-stream;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""


@dataclass
class Server:
    base_url: str
    kind: str  # e.g. "nginx/1.22.1" or "python http.server (fallback)"
    process: subprocess.Popen


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_nginx() -> str | None:
    """Path of nginx, installing Debian's package once if it is missing."""
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if found or not shutil.which("apt-get"):
        return found or None
    log.info("nginx not found; trying apt-get install -y nginx")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        if subprocess.run(cmd, check=False, capture_output=True).returncode != 0:
            log.warning("%s failed", " ".join(cmd))
            return None
    return shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], check=False, capture_output=True, text=True)
    return (out.stderr or out.stdout).strip().split(":")[-1].strip() or "nginx"


def start_nginx(nginx: str, root: Path, run_dir: Path, host: str, port: int) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    # As root, nginx workers would switch to `nobody`, who may not read the tree.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = NGINX_CONF.format(user=user, run=run_dir.resolve(), host=host, port=port, root=root.resolve())
    (run_dir / "nginx.conf").write_text(conf)
    cmd = [nginx, "-e", "stderr", "-p", str(run_dir.resolve()), "-c", "nginx.conf"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def start_python(root: Path, host: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", host,
           "--directory", str(root.resolve())]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_listening(proc: subprocess.Popen, host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"file server exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"file server did not listen on {host}:{port} within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # nginx: SIGTERM is a fast shutdown of master and workers
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve(root: Path, run_dir: Path, host: str = "127.0.0.1") -> Iterator[Server]:
    """Serve `root` over HTTP on `host` (a local address) while the block runs."""
    port = free_port(host)
    nginx = find_nginx()
    if nginx:
        proc, kind = start_nginx(nginx, root, run_dir, host, port), nginx_version(nginx)
    else:
        log.warning("nginx unavailable: falling back to Python's ThreadingHTTPServer, "
                    "which may limit throughput")
        proc, kind = start_python(root, host, port), "python http.server (fallback)"
    try:
        wait_listening(proc, host, port)
        log.info("serving %s with %s on %s:%d", root, kind, host, port)
        yield Server(f"http://{host}:{port}", kind, proc)
    finally:
        stop(proc)
