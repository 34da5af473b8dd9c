"""`make bench-cluster`: the same ingest and the same training on 1, 2 and 3 worker nodes of a local Ray cluster.

infra/local-cluster.sh starts the cluster: a head that only coordinates (HEAD_CPUS=0: the GCS; no task lands
there), N worker nodes of NODE_CPUS=1 CPU each, the driver's own CPU-less node, every node in its own network and
mount namespace on a bridge, and an S3 server (moto) on the bridge's driver address. Work scales with the nodes:
the ingest crawls N shards at once (`--workers N`, one per node CPU) and training runs N Ray Train workers (one
per node); the URL list (real photos served by nginx on the bridge), the training shards (real digits), the
outputs and the results stores live on the cluster's S3.

The nodes share this machine's CPUs, so throughput stops growing once the node CPUs outnumber its cores; the
figure to watch is overhead: CPU per image and per sample. CPU is the whole machine's busy time (/proc/stat)
over each run, since the nodes' processes are not children of this harness; the CPU of the cluster's own
processes (every process carrying a node's CLIPLINE_CLUSTER_NODE mark, the clipline command's session, the S3
server and nginx, read from /proc every second) is measured beside it, a figure other work on the machine does
not disturb. Before each run the harness waits for the 1-minute load to drop below --max-load.

Training runs --train-runs times per node count, in rounds over the node counts, every other round in reverse
(1, 2, 3, 3, 2, 1, 1, 2, 3, ...; each run after the first on a fresh cluster), and the report takes the medians: on
a shared machine one run's CPU per sample moves by as much as the 10% the figure is judged by, or more. The default
is an even number of runs, so that each node count runs first in a round as often as last.

Last, on the 2-node cluster, elastic training (`--workers 2 --min-workers 1`) loses a node that hosts a training
worker; the time from the kill to the new, smaller worker group and to its first logged step is reported.

    python bench/cluster.py [--nodes 1 2 3] [--num-urls 20000] [--steps 100] [--train-runs 4] [--no-resume]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster_report
import ingest_data
import ingest_server
from cluster_command import BenchError, Command
from cluster_meter import CpuMeter
from cluster_report import Cluster, IngestRun, NodeCount, Resume, ResumeFailure, RunCpu, TrainRun
from docs_section import update_section
from train import ensure_shards
from train_sampler import add_load_options, load1, wait_for_load

from clipline.pipelines import storage
from clipline.pipelines.store.query import run_query

log = logging.getLogger("bench.cluster")

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "infra" / "local-cluster.sh"
WORK = REPO / ".bench" / "cluster"
IMAGES = REPO / ".bench" / "ingest" / "images"  # bench-ingest's photos, cached there
CLIPLINE = REPO / ".venv" / "bin" / "clipline"
# A cluster of its own: the test suite's clusters use other names, subnets and state folders.
SETTINGS = {"CLUSTER_NAME": "bcl", "CLUSTER_SUBNET": "10.79.9", "CLUSTER_DIR": "/tmp/bench-cluster-state",
            "HEAD_CPUS": "0", "NODE_CPUS": "1"}
BUCKET = "s3://clipline/bench"
TRAIN_SHARDS, PER_SHARD = 20, 250  # bench-train's shards (.bench/train/shards), shared with it
RESUME_NODES = 2  # the kill test: --workers 2 --min-workers 1 on two worker nodes
# What happens between the kill and the smaller group: the first line of each in the run's output after the kill.
RESUME_PHASES = {"Ray Train sees the failure": r"\[FailurePolicy\] RETRY",
                 "tries 2 workers again": r"Attempting to start training worker group of size 2",
                 "GCS marks the node dead": r"has been marked dead",
                 "the 2-worker start times out": r"worker group startup timed out",
                 "starts 1 worker": r"Attempting to start training worker group of size 1"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3], help="worker node counts to measure")
    p.add_argument("--num-urls", type=int, default=20_000, help="URLs ingested on each cluster")
    p.add_argument("--samples-per-shard", type=int, default=417,
                   help="48 shards of 20,000 URLs: a multiple of 1, 2 and 3 workers, so none idles at the end")
    p.add_argument("--threads", type=int, default=32, help="download threads per crawl worker")
    p.add_argument("--steps", type=int, default=100, help="training steps on each cluster")
    p.add_argument("--batch-size", type=int, default=64, help="samples per training worker per step")
    p.add_argument("--train-runs", type=int, default=4,
                   help="training runs per node count, in rounds over the node counts, every other round in reverse "
                        "(an even count runs each node count first as often as last); the report takes the medians")
    p.add_argument("--log-every", type=int, default=5, help="steps per logged training window")
    p.add_argument("--skip", type=int, default=10, help="first training steps left out of the steady state")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help=f"measure kill-to-resume of elastic training on {RESUME_NODES} worker nodes")
    p.add_argument("--resume-steps", type=int, default=60, help="steps of the kill-to-resume run")
    p.add_argument("--kill-at-step", type=int, default=12, help="kill a node once this step is logged")
    p.add_argument("--group-start-timeout-s", type=float, default=None,
                   help="RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S for the kill-to-resume run (default: Ray's, 60 s)")
    p.add_argument("--idle-s", type=float, default=10, help="seconds the idle cluster's CPU is measured")
    add_load_options(p, load_wait=300, timeout_of="clipline command")
    args = p.parse_args(argv)
    args.argv = argv
    if min(args.nodes) < 1 or len(set(args.nodes)) != len(args.nodes):
        p.error("--nodes takes distinct counts of at least 1")
    if args.train_runs < 1:
        p.error("--train-runs takes at least 1")
    if not 0 <= args.skip < args.steps - args.log_every:
        p.error("need 0 <= --skip < --steps - --log-every")
    if not 5 < args.kill_at_step < args.resume_steps - 10:
        p.error("need 5 < --kill-at-step < --resume-steps - 10 (a checkpoint before the kill, steps after it)")
    return args


def check_shards(args) -> None:
    """Warn where the last round of shards leaves crawl workers idle: the steady images/s would include that."""
    num_shards = -(-args.num_urls // args.samples_per_shard)
    for nodes in args.nodes:
        if num_shards % nodes:
            log.warning("%d shards do not split evenly over %d workers: some idle at the end, which lowers the "
                        "steady images/s of %d nodes", num_shards, nodes, nodes)


# ---------------------------------------------------------------- the cluster


def script(*args: str, timeout: float = 180, s3_port: int | None = None) -> str:
    """Run infra/local-cluster.sh with this benchmark's cluster settings; its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | SETTINGS
    env |= {"CLUSTER_S3_PORT": str(s3_port)} if s3_port else {}
    done = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise BenchError(f"local-cluster.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@contextlib.contextmanager
def cluster_up(num_nodes: int) -> Iterator[Cluster]:
    """A fresh cluster of `num_nodes` worker nodes (a new S3 server, empty), taken down on exit, also on errors."""
    script("down")  # what a run killed before its own clean-up left behind
    start = time.monotonic()
    try:
        out = script("up", str(num_nodes), timeout=300, s3_port=ingest_server.free_port())
        up_s = time.monotonic() - start
        env = dict(line.removeprefix("export ").split("  #")[0].strip().split("=", 1)
                   for line in out.splitlines() if line.startswith("export "))
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})  # storage and queries here
        log.info("%d worker nodes up in %.1f s", num_nodes, up_s)
        yield Cluster(num_nodes, int(SETTINGS["NODE_CPUS"]), SETTINGS["CLUSTER_SUBNET"], env, up_s)
    finally:
        script("down")


def fixed_pids(nginx_pid: int | None = None) -> dict[int, str]:
    """Processes of the set-up that are not a node's: the S3 server and nginx (their children go with them)."""
    s3_pid = int((Path(SETTINGS["CLUSTER_DIR"]) / "s3.pid").read_text())
    return {s3_pid: "S3 (moto)"} | ({nginx_pid: "nginx"} if nginx_pid else {})


def measured(cmd: list[str], cluster: Cluster, fixed: dict[int, str], args, log_path: Path) -> RunCpu:
    """Run a clipline command after the load has settled; its window and CPU (machine and cluster processes)."""
    load = wait_for_load(args.max_load, args.load_wait)
    log.info("running (load %.2f): %s", load, shlex.join(cmd))
    with CpuMeter(SETTINGS["CLUSTER_NAME"], fixed) as meter:
        command = Command(cmd, cluster, log_path)
        meter.add_session(command.proc.pid, "clipline command")
        end = command.wait(args.timeout)
    return RunCpu(command.started, end, load, load1(), meter.samples, meter.totals_by_part(), meter.own_cpu_s,
                  shlex.join(cmd))


def idle_cpu(fixed: dict[int, str], args) -> float:
    """CPU share (of one core) the idle cluster's own processes use: the nodes' daemons."""
    wait_for_load(args.max_load, args.load_wait)
    with CpuMeter(SETTINGS["CLUSTER_NAME"], fixed) as meter:
        time.sleep(args.idle_s)
    first, last = meter.samples[0], meter.samples[-1]
    return (last.own_s - first.own_s) / max(last.t - first.t, 1e-9)


# ---------------------------------------------------------------- ingest and training


def upload_urls(base_url: str, args) -> str:
    """The URL list on the cluster's S3; its URI."""
    images = ingest_data.build_images(IMAGES)
    ingest_data.write_row_files(IMAGES, images, args.num_urls)
    urls = WORK / "urls.csv"
    ingest_data.write_url_list(urls, base_url, images, args.num_urls)
    storage.write_bytes(f"{BUCKET}/urls.csv", urls.read_bytes())
    return f"{BUCKET}/urls.csv"


def upload_shards() -> str:
    """The training shards on the cluster's S3; their URI pattern."""
    pattern = ensure_shards(TRAIN_SHARDS, PER_SHARD)
    for shard in sorted(Path(pattern).parent.glob("*.tar")):
        storage.write_bytes(f"{BUCKET}/digits/{shard.name}", shard.read_bytes())
    return f"{BUCKET}/digits/{{00000..{TRAIN_SHARDS - 1:05d}}}.tar"


def ingest_command(cluster: Cluster, urls_uri: str, root: str, args) -> list[str]:
    # All URLs share one host: the per-host cap (16) lifted to the threads, as in bench-ingest.
    return [str(CLIPLINE), "ingest", urls_uri, "--out", f"{root}/shards", "--results-uri", f"{root}/results",
            "--url-col", "url", "--caption-col", "caption", "--input-format", "csv", "--image-size", "256",
            "--resize-mode", "center_crop", "--encode-format", "jpg", "--samples-per-shard",
            str(args.samples_per_shard), "--workers", str(cluster.cpus), "--threads-per-worker", str(args.threads),
            "--per-host-concurrency", str(args.threads), "--allowed-networks",
            cluster.env["CLUSTER_ALLOWED_NETWORKS"]]


def train_command(data_uri: str, root: str, workers: int, steps: int, args, *options: str) -> list[str]:
    return [str(CLIPLINE), "train", "--data", data_uri, "--out", f"{root}/run", "--results-uri", f"{root}/results",
            "--model", "clipline-tiny", "--steps", str(steps), "--batch-size", str(args.batch_size),
            "--workers", str(workers), "--data-workers", "1", "--resampled", "--precision", "fp32",
            "--warmup", "10", "--seed", "0", *options]


def measure_ingest(cluster: Cluster, urls_uri: str, fixed: dict[int, str], args) -> IngestRun:
    root = f"{BUCKET}/n{cluster.num_nodes}/ingest"
    cpu = measured(ingest_command(cluster, urls_uri, root, args), cluster, fixed, args,
                   WORK / "logs" / f"ingest-{cluster.num_nodes}.log")
    shards = run_query(f"{root}/results", "SELECT epoch(written_at), num_success, split_part(node, '/', 1) "
                                          "FROM ingest_shards ORDER BY 1").rows
    run = IngestRun(cluster.cpus, [(float(at), int(ok)) for at, ok, _ in shards], {ip for _, _, ip in shards}, cpu)
    log.info("ingest on %d nodes: %s", cluster.num_nodes, run.summary())
    return run


def measure_train(cluster: Cluster, data_uri: str, fixed: dict[int, str], args, run: int = 1) -> TrainRun:
    root = f"{BUCKET}/n{cluster.num_nodes}/train{run}"
    cmd = train_command(data_uri, root, cluster.cpus, args.steps, args, "--log-every", str(args.log_every))
    cpu = measured(cmd, cluster, fixed, args, WORK / "logs" / f"train-{cluster.num_nodes}-{run}.log")
    points = run_query(f"{root}/results", "SELECT step, epoch(time) FROM train_metrics "
                                          "WHERE name = 'samples_per_s' ORDER BY step").rows
    nodes = run_query(f"{root}/results", "SELECT DISTINCT split_part(node, '/', 1) FROM train_workers").rows
    train = TrainRun(cluster.cpus, args.batch_size * cluster.cpus, args.steps, args.skip,
                     [(int(s), float(t)) for s, t in points], {ip for (ip,) in nodes}, cpu)
    log.info("training on %d nodes, run %d: %s", cluster.num_nodes, run, train.summary())
    return train


# ---------------------------------------------------------------- kill-to-resume


def poll(results_uri: str, sql: str, command: Command, what: str, timeout: float = 300) -> list[tuple]:
    """Query the store once a second until `sql` returns rows; the run must go on meanwhile."""
    deadline = time.time() + timeout
    while True:
        tables = {t: storage.glob(f"{results_uri}/{t}/**/*.parquet") for t in ("train_workers", "train_metrics")}
        if all(tables.values()) and (rows := run_query(results_uri, sql).rows):
            return rows
        if command.proc.poll() is not None:
            raise BenchError(f"the training run ended before {what} (log: {command.log_path})")
        if time.time() > deadline:
            raise BenchError(f"no {what} within {timeout:.0f} s (log: {command.log_path})")
        time.sleep(1)


def measure_resume(cluster: Cluster, data_uri: str, args) -> Resume:
    """Elastic training on two nodes; kill the node of a training worker; time the way back to training."""
    root = f"{BUCKET}/resume"
    results = f"{root}/results"
    cmd = train_command(data_uri, root, RESUME_NODES, args.resume_steps, args, "--min-workers", "1",
                        "--resize-interval-s", "5", "--checkpoint-every", "5", "--log-every", "1")
    env = {} if args.group_start_timeout_s is None else \
        {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": f"{args.group_start_timeout_s:g}"}
    wait_for_load(args.max_load, args.load_wait)
    log.info("kill-to-resume run: %s", shlex.join(cmd))
    command = Command(cmd, cluster, WORK / "logs" / "resume.log", env)
    try:
        poll(results, f"SELECT step FROM train_metrics WHERE step >= {args.kill_at_step}", command,
             f"step {args.kill_at_step}")
        ips = [ip for (ip,) in run_query(results, "SELECT split_part(node, '/', 1) FROM train_workers").rows]
        victim = next(ip for ip in sorted(ips) if ip != cluster.node_ip(0))
        killed_at = time.time()
        script("kill-node", str(cluster.worker_of(victim)))
        last_step = run_query(results, "SELECT max(step) FROM train_metrics").rows[0][0]
        log.info("killed worker node %s after step %d", victim, last_step)
        started_at, from_step = poll(results, "SELECT min(epoch(started_at)), min(from_step) FROM train_workers "
                                              "WHERE world_size = 1 HAVING count(*) > 0", command,
                                     "worker group of size 1")[0]
        step, stepped_at = poll(results, f"SELECT step, epoch(time) FROM train_metrics WHERE epoch(time) > "
                                         f"{killed_at} ORDER BY time LIMIT 1", command, "step logged after the kill")[0]
    finally:
        command.stop()
    phases = {name: at - killed_at if (at := command.first_after(killed_at, pattern)) else None
              for name, pattern in RESUME_PHASES.items()}
    log.info("kill to a group of one %.1f s, to step %d %.1f s", started_at - killed_at, step, stepped_at - killed_at)
    return Resume(" ".join([*(f"{k}={v}" for k, v in env.items()), shlex.join(cmd)]), victim, int(last_step),
                  killed_at, float(started_at), int(from_step), int(step), float(stepped_at), phases)


# ---------------------------------------------------------------- main


def measure_cluster(num_nodes: int, scaling: bool, args) -> tuple[NodeCount | None, Resume | ResumeFailure | None]:
    """Bring up `num_nodes` worker nodes; the scaling runs on them (`scaling`) and the kill test (on two)."""
    with cluster_up(num_nodes) as cluster, \
            ingest_server.serve(IMAGES, WORK / "nginx", host=cluster.driver_ip) as server:
        urls_uri, data_uri = upload_urls(server.base_url, args), upload_shards()
        fixed = fixed_pids(server.process.pid)
        result = None
        if scaling:
            idle = idle_cpu(fixed, args)
            result = NodeCount(num_nodes, cluster.up_s, idle, measure_ingest(cluster, urls_uri, fixed, args),
                               [measure_train(cluster, data_uri, fixed, args)], server.kind)
        resume = None
        if args.resume and num_nodes == RESUME_NODES:
            try:
                resume = measure_resume(cluster, data_uri, args)
            except BenchError as e:  # the scaling figures stand without it: the report says what failed
                log.error("kill-to-resume failed: %s", e)
                resume = ResumeFailure(str(e).split("\n")[0])
    return result, resume


def train_again(num_nodes: int, run: int, args) -> TrainRun:
    """One more training run, on a fresh cluster of `num_nodes` worker nodes (no file server: no ingest)."""
    with cluster_up(num_nodes) as cluster:
        return measure_train(cluster, upload_shards(), fixed_pids(), args, run)


def run_bench(args) -> tuple[str, bool]:
    """The report section, and whether every measurement succeeded."""
    check_shards(args)
    counts = sorted(set(args.nodes) | ({RESUME_NODES} if args.resume else set()))
    rows, resume = [], None
    for n in counts:
        row, found = measure_cluster(n, n in args.nodes, args)
        rows += [row] if row else []
        resume = found or resume
    # More rounds over the node counts, every other one in reverse (the first: 1, 2, 3; the second: 3, 2, 1; ...), so
    # that a machine slowing down (or speeding up) over the hour does not always reach the largest count last.
    for run in range(2, args.train_runs + 1):
        for row in rows[::-1] if run % 2 == 0 else rows:
            row.trains.append(train_again(row.nodes, run, args))
    command = shlex.join(["python", "bench/cluster.py", *args.argv])
    return cluster_report.render(rows, resume, args, SETTINGS, command), not isinstance(resume, ResumeFailure)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a killed harness still takes its cluster down
    args = parse_args(argv)
    if not CLIPLINE.exists():
        log.error("%s not found: run `make install` first", CLIPLINE.relative_to(REPO))
        return 1
    if os.geteuid() != 0:  # local-cluster.sh would fall back to nodes on loopback, which this benchmark cannot use
        log.error("bench-cluster needs root: each node gets its own network namespace on a bridge; run it as root")
        return 1
    try:
        section, complete = run_bench(args)
    except (RuntimeError, subprocess.TimeoutExpired) as e:  # BenchError, or the file server's
        log.error("bench-cluster failed: %s", e)
        return 1
    out = args.out if args.out.is_absolute() else REPO / args.out
    update_section(out, cluster_report.HEADING, section)
    log.info("wrote the %r section of %s:\n%s", cluster_report.HEADING, out, section)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
