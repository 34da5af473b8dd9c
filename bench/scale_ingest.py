"""`make bench-scale-ingest`: image ingest at 20,000 and 200,000 URLs, memory above the idle baseline (#15).

The same real photos, nginx and settings as `make bench-ingest` (small photos, 150-600 px, by default). Steps:

1. the baseline: clipline's driver imports, Prefect's local server and a local Ray, held idle
   (bench/ingest_idle.py), measured as the crawl is;
2. `clipline ingest` at each --sizes (one warm-up of 200 URLs first): images/s, peak PSS of the whole process
   tree and above the baseline, the driver's own peak, the crawl workers' peak, CPU per image, and the size of
   what the run wrote beside the shards (status Parquet, stats) and into its results store;
3. img2dataset at --img2dataset-sizes on the same lists (peak PSS: the goal is clipline's peak above the
   baseline at most img2dataset's);
4. the shard plan (`plan_shards`: the URL list read once, streaming) timed in a fresh process, with
   tracemalloc's peak, the peak of Arrow's memory pool and the growth of the process's RSS, at each size.

    python bench/scale_ingest.py [--sizes 20000 200000] [--img2dataset-sizes 20000] [--sides 150 600]

The result replaces the `## Ingest at scale (make bench-scale-ingest)` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import shlex
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest
import ingest_data
import ingest_measure
import ingest_server
from docs_section import machine_info, update_section, versions
from ingest_measure import RunResult

log = logging.getLogger("bench.scale_ingest")

HEADING = "## Ingest at scale (make bench-scale-ingest)"
CRAWL_WORKER = "ray::_crawl_shard_task"
MB = 2**20


@dataclass
class Run:
    tool: str
    urls: int
    result: RunResult

    def driver_mb(self) -> float:
        """The main process's own peak PSS."""
        return max((mb for name, mb in self.result.peak_pss_of_name.items() if name.endswith("(main process)")),
                   default=float("nan"))

    def images_per_s(self) -> float:
        return self.result.successes / self.result.wall_s


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000],
                   help="URL list lengths clipline crawls, smallest first")
    p.add_argument("--img2dataset-sizes", type=int, nargs="*", default=[20_000],
                   help="list lengths img2dataset crawls too (none: clipline only)")
    p.add_argument("--sides", type=int, nargs=2, default=list(ingest_data.SIDES["small"]), metavar=("MIN", "MAX"),
                   help="longest side of the photos, px (bench-ingest's small-image mix by default)")
    p.add_argument("--processes", type=int, default=2, help="worker processes, both tools")
    p.add_argument("--threads", type=int, default=32, help="threads per process, both tools")
    p.add_argument("--num-images", type=int, default=400, help="distinct photos the rows cycle over")
    p.add_argument("--idle-s", type=float, default=20.0, help="how long the baseline holds Ray and Prefect idle")
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed per run")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="the benchmarks file to update")
    args = p.parse_args(argv)
    args.argv = argv
    if sorted(args.sizes) != args.sizes or args.sizes[0] < 1:
        p.error("--sizes: positive, smallest first")
    if not set(args.img2dataset_sizes) <= set(args.sizes):
        p.error("--img2dataset-sizes must be among --sizes")
    args.sides, args.repeat, args.tool_env = tuple(args.sides), 1, {tool: {} for tool in ingest.TOOLS}
    return args


def measure_baseline(args: argparse.Namespace, server_pid: int) -> RunResult:
    cmd = [sys.executable, "bench/ingest_idle.py", "--seconds", str(args.idle_s)]
    log_path = ingest.REPO / ingest.WORK / "logs" / "idle-baseline.log"
    res = ingest_measure.run_measured(cmd, ingest.REPO / ingest.WORK / "out" / "idle", log_path, ingest.REPO,
                                      ingest.tool_env({}), args.timeout, server_pid=server_pid)
    if res.returncode != 0:
        raise ingest.BenchError(f"the idle baseline failed; log {log_path}:\n{log_path.read_text()[-3000:]}")
    log.info("idle baseline: peak PSS %.0f MB", res.peak_pss_mb)
    return res


Plan = tuple[float, float, float, float]  # seconds, tracemalloc peak MB, Arrow pool peak MB, RSS growth MB


def time_plan(urls: Path) -> Plan:
    """plan_shards on the list in a fresh process: seconds, tracemalloc's peak (Python objects), the peak of
    Arrow's memory pool (the CSV reader's buffers, which tracemalloc does not see) and the growth of the
    process's peak RSS over the plan, MB."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_plan_here, (str(urls),))


def _plan_here(urls: str) -> Plan:
    import pyarrow as pa

    from clipline.pipelines.config import ReaderConfig
    from clipline.pipelines.crawl import reader

    config = ReaderConfig(url_list_uri=str(ingest.REPO / urls), input_format="csv", url_col="url",
                          caption_col="caption", samples_per_shard=ingest.SAMPLES_PER_SHARD)
    rss_before = _rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    reader.plan_shards(config)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return seconds, peak / MB, pa.default_memory_pool().max_memory() / MB, max(peak_rss - rss_before, 0.0)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def folder_mb(path: Path, pattern: str = "**/*") -> float:
    return sum(f.stat().st_size for f in path.glob(pattern) if f.is_file()) / MB


def store_sizes(n: int) -> tuple[float, float]:
    """What a clipline run wrote besides the tars: the status Parquet and stats files, and the results store."""
    out = ingest.REPO / ingest.WORK / "out" / f"clipline-scale-{n}"
    beside = folder_mb(out, "*.parquet") + folder_mb(out, "*.json")
    return beside, folder_mb(ingest.results_of(out))


def run_all(args: argparse.Namespace) -> tuple[RunResult, list[Run], dict[int, Plan], dict]:
    ingest.ensure_clipline()
    if args.img2dataset_sizes:
        ingest.ensure_img2dataset()
    folder = ingest.image_dir(args)
    images = ingest_data.build_images(folder, args.num_images, sides=args.sides)
    ingest_data.write_row_files(folder, images, args.sizes[-1])
    runs, plans, sizes = [], {}, {}
    with ingest_server.serve(folder, ingest.REPO / ingest.WORK / "nginx") as server:
        lists = {n: ingest.WORK / f"urls-scale-{n}.csv" for n in [200, *args.sizes]}
        for n, path in lists.items():
            ingest_data.write_url_list(ingest.REPO / path, server.base_url, images, n)
        pid = server.process.pid
        baseline = measure_baseline(args, pid)
        ingest.run_one("clipline", "scale-warmup", lists[200], args, pid)
        for n in args.sizes:
            runs.append(Run("clipline", n, ingest.run_one("clipline", f"scale-{n}", lists[n], args, pid)[0]))
            sizes[n] = store_sizes(n)
        if args.img2dataset_sizes:
            ingest.run_one("img2dataset", "scale-warmup", lists[200], args, pid)
        for n in args.img2dataset_sizes:
            runs.append(Run("img2dataset", n, ingest.run_one("img2dataset", f"scale-{n}", lists[n], args, pid)[0]))
    for n in args.sizes:
        plans[n] = time_plan(lists[n])
    return baseline, runs, plans, sizes


def steady_rate(runs: list[Run]) -> float:
    """images/s between the smallest and the largest clipline run: start-up cancels out."""
    ours = [r for r in runs if r.tool == "clipline"]
    first, last = ours[0].result, ours[-1].result
    if len(ours) < 2 or last.wall_s <= first.wall_s:
        return float("nan")
    return (last.successes - first.successes) / (last.wall_s - first.wall_s)


def render(args: argparse.Namespace, baseline: RunResult, runs: list[Run], plans: dict, sizes: dict) -> str:
    base = baseline.peak_pss_mb
    lines = [HEADING, "", f"- Machine: {machine_info()}",
             f"- Versions: {versions('ray', 'prefect')}, img2dataset {ingest.I2D_VERSION}",
             f"- Command: `{shlex.join(['python', 'bench/scale_ingest.py', *args.argv])}`",
             f"- Data and settings as `make bench-ingest` (photos of {args.sides[0]}-{args.sides[1]} px, one "
             f"distinct file per URL, nginx on loopback; {args.processes} processes x {args.threads} threads, "
             "256 px center_crop, 1,000 samples per shard)",
             f"- Baseline: `bench/ingest_idle.py` (the ingest driver's imports, a Prefect flow run with its local "
             f"server, a local Ray started as the crawl starts it), held idle {args.idle_s:.0f} s: peak PSS "
             f"**{base:.0f} MB** (" + ", ".join(f"{name} {mb:.0f}" for name, (mb, _) in sorted(
                 baseline.pss_by_name.items(), key=lambda kv: -kv[1][0])[:6]) + ")",
             "- Peak PSS: of the whole process tree, as in `make bench-ingest`; driver = the main process's own "
             f"peak; crawl workers = the peak of `{CRAWL_WORKER}` processes together", "",
             "| tool | URLs | successes | wall s | images/s | CPU ms/image | peak PSS MB | above baseline MB "
             "| driver MB | crawl workers MB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        res = r.result
        above = f"{res.peak_pss_mb - base:.0f}" if r.tool == "clipline" else "-"
        workers = res.peak_pss_of_name.get(CRAWL_WORKER)
        lines.append(f"| {r.tool} | {r.urls:,} | {res.successes:,} | {res.wall_s:.1f} | {r.images_per_s():.0f} "
                     f"| {1000 * res.cpu_s / max(res.successes, 1):.2f} | {res.peak_pss_mb:.0f} | {above} "
                     f"| {r.driver_mb():.0f} | {f'{workers:.0f}' if workers else '-'} |")
    ours = [r for r in runs if r.tool == "clipline"]
    lines += ["", "| URLs | plan_shards s | plan_shards tracemalloc peak MB | Arrow pool peak MB | RSS growth MB "
              "| status Parquet + stats MB | results store MB |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in args.sizes:
        seconds, traced, pool, rss = plans[n]
        lines.append(f"| {n:,} | {seconds:.2f} | {traced:.1f} | {pool:.1f} | {rss:.0f} | {sizes[n][0]:.1f} "
                     f"| {sizes[n][1]:.1f} |")
    lines += ["", *verdict(ours, [r for r in runs if r.tool == "img2dataset"], base, steady_rate(runs))]
    return "\n".join(lines) + "\n"


def verdict(ours: list[Run], theirs: list[Run], base: float, rate: float) -> list[str]:
    first, last = ours[0], ours[-1]
    growth = last.result.peak_pss_mb / first.result.peak_pss_mb
    lines = [f"Steady rate between {first.urls:,} and {last.urls:,} URLs: **{rate:.0f} images/s**.",
             f"Peak PSS at {last.urls:,} URLs / at {first.urls:,}: **{growth:.2f}x** (goal: at most 1.10x); "
             f"driver {last.driver_mb() / first.driver_mb():.2f}x."]
    for r in theirs:
        mine = next((o for o in ours if o.urls == r.urls), None)
        if mine:
            above = mine.result.peak_pss_mb - base
            ratio = above / r.result.peak_pss_mb
            lines.append(f"At {r.urls:,} URLs clipline's peak above the baseline is {above:.0f} MB against "
                         f"img2dataset's whole peak of {r.result.peak_pss_mb:.0f} MB: **{ratio:.2f}x** "
                         "(goal: at most 1x).")
    return lines


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        baseline, runs, plans, sizes = run_all(args)
    except RuntimeError as exc:  # BenchError, or the file server failing to start
        log.error("bench-scale-ingest failed: %s", exc)
        return 1
    section = render(args, baseline, runs, plans, sizes)
    out = args.out if args.out.is_absolute() else ingest.REPO / args.out
    update_section(out, HEADING, section)
    log.info("wrote %s:\n%s", out, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
