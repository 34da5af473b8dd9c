"""`make bench-ingest`: image ingest throughput of clipline vs img2dataset, side by side.

Both tools crawl the same URL list of real JPEG photos from a static file server on
loopback (nginx) with the same settings, and write WebDataset shards. Each tool runs
on a small list (the first --small URLs) and on the full list; images/s is
(successes large - successes small) / (wall large - wall small), so start-up counts
apart. The result replaces the `## Image ingest (make bench-ingest)` section of
docs/benchmarks.md.

    python bench/ingest.py [--num-urls 20000] [--small 2000] [--processes 2] [--threads 32]
                           [--env KEY=VALUE ...] [--clipline-env KEY=VALUE ...]

Memory is the peak PSS summed over each tool's whole process tree (see ingest_measure),
with summed RSS beside it and a per-process breakdown at the peak; CPU is split by
process and thread. Settings given with --env (both tools) or --clipline-env (only
clipline: documented Ray/Prefect settings a user would set too) are stated in the report.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from docs_section import update_section
from imaging import imaging_library

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest_data
import ingest_floor
import ingest_measure
import ingest_report
import ingest_server

log = logging.getLogger("bench.ingest")

REPO = Path(__file__).resolve().parent.parent
WORK = Path(".bench/ingest")  # relative to REPO, as are the paths in the commands
I2D_VERSION = "1.47.0"
I2D_VENV = Path(".bench/img2dataset-venv")
CLIPLINE = Path(".venv/bin/clipline")
SAMPLES_PER_SHARD = 1000
TOOLS = ("img2dataset", "clipline")


class BenchError(RuntimeError):
    """A step failed; main() logs the message and exits non-zero."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-urls", type=int, default=20_000, help="URLs in the large run")
    p.add_argument("--small", type=int, default=2_000, help="URLs in the small run")
    p.add_argument("--processes", type=int, default=2, help="worker processes, both tools")
    p.add_argument("--threads", type=int, default=32, help="threads per process, both tools")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of: "
                   + ", ".join(TOOLS))
    p.add_argument("--num-images", type=int, default=400, help="distinct JPEG files")
    p.add_argument("--sides", type=int, nargs=2, default=list(ingest_data.SIDES["mixed"]), metavar=("MIN", "MAX"),
                   help="longest side of the photos, px, uniform over MIN..MAX (default: the mixed range %(default)s; "
                        f"the small-image row: {' '.join(map(str, ingest_data.SIDES['small']))})")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per list size; the fastest counts (less noise, more time)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per run")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment setting for both tools (e.g. MALLOC_ARENA_MAX=2); stated in the report")
    p.add_argument("--clipline-env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment setting for clipline only (a documented Ray or Prefect setting a user "
                        "would set too); stated in the report")
    args = p.parse_args(argv)
    args.argv = argv
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := set(args.tools) - set(TOOLS):
        p.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    if not 16 <= args.sides[0] <= args.sides[1]:
        p.error("--sides needs 16 <= MIN <= MAX")
    args.sides = tuple(args.sides)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if not 0 < args.small < args.num_urls:
        p.error("need 0 < --small < --num-urls")
    for item in [*args.env, *args.clipline_env]:
        if "=" not in item or not item.split("=", 1)[0]:
            p.error(f"--env/--clipline-env take KEY=VALUE, not {item!r}")
    both = dict(item.split("=", 1) for item in args.env)
    args.tool_env = {"img2dataset": both, "clipline": {**both, **dict(i.split("=", 1) for i in args.clipline_env)}}
    return args


def run_quiet(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"{what} failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}"
                         f"{proc.stderr[-2000:]}")


def ensure_img2dataset() -> None:
    """img2dataset in its own venv (its pins clash with the project's), created once."""
    stamp = REPO / I2D_VENV / f".installed-{I2D_VERSION}"
    if stamp.exists():
        return
    python = shutil.which("python3.11") or sys.executable
    log.info("creating %s with img2dataset==%s (once)", I2D_VENV, I2D_VERSION)
    run_quiet([python, "-m", "venv", str(I2D_VENV)], "creating the img2dataset venv")
    run_quiet([str(I2D_VENV / "bin/pip"), "install", "-q", f"img2dataset=={I2D_VERSION}"],
              "pip install img2dataset")
    stamp.touch()


def ensure_clipline() -> None:
    if not (REPO / CLIPLINE).exists():
        raise BenchError(f"{CLIPLINE} not found: run `make install` first")
    proc = subprocess.run([str(CLIPLINE), "ingest", "--help"], check=False, cwd=REPO,
                          capture_output=True)
    if proc.returncode != 0:
        raise BenchError(f"`{CLIPLINE} ingest --help` failed: this clipline has no ingest "
                         f"command yet\n{proc.stderr.decode()[-1000:]}")


def tool_version(tool: str) -> str:
    if tool == "img2dataset":
        return I2D_VERSION
    try:
        version = metadata.version("clipline")
    except metadata.PackageNotFoundError:
        version = "?"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--", "pipelines", "flows", "tasks"], check=False,
                             cwd=REPO, capture_output=True, text=True).stdout.strip()
    if commit and changed:
        commit += " + uncommitted changes"
    return f"{version} ({commit + '; ' if commit else ''}{imaging_library()})"


def tool_command(tool: str, urls: Path, out: Path, args: argparse.Namespace) -> list[str]:
    if tool == "img2dataset":
        return [str(I2D_VENV / "bin/img2dataset"), "--url_list", str(urls),
                "--input_format", "csv", "--url_col", "url", "--caption_col", "caption",
                "--output_format", "webdataset", "--output_folder", str(out),
                "--processes_count", str(args.processes), "--thread_count", str(args.threads),
                "--image_size", "256", "--resize_mode", "center_crop",
                "--number_sample_per_shard", str(SAMPLES_PER_SHARD), "--enable_wandb", "False"]
    # All URLs share one host: lift clipline's per-host cap (16) to the thread count so
    # both tools download with the same concurrency. A fresh results store per run keeps
    # benchmark rows out of the user's one.
    return [str(CLIPLINE), "ingest", str(urls), "--out", str(out), "--url-col", "url",
            "--caption-col", "caption", "--input-format", "csv", "--image-size", "256",
            "--resize-mode", "center_crop", "--encode-format", "jpg",
            "--samples-per-shard", str(SAMPLES_PER_SHARD), "--workers", str(args.processes),
            "--threads-per-worker", str(args.threads), "--allow-private-networks",
            "--per-host-concurrency", str(args.threads), "--results-uri", str(results_of(out))]


def results_of(out: Path) -> Path:
    return out.parent / f"{out.name}-results"


def tool_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a run: this one, plus `extra` (the --env settings, stated in the report)."""
    env = dict(os.environ)
    env["NO_ALBUMENTATIONS_UPDATE"] = "1"  # img2dataset would otherwise try the network
    env.pop("RAY_ADDRESS", None)  # clipline: a local Ray on this machine, not a cluster
    env.update(extra)
    return env


def run_one(tool: str, label: str, urls: Path, args: argparse.Namespace, server_pid: int):
    """One measured run of `tool` on `urls`, into a fresh output folder."""
    out = WORK / "out" / f"{tool}-{label}"
    for path in (out, results_of(out)):
        shutil.rmtree(REPO / path, ignore_errors=True)
    cmd = tool_command(tool, urls, out, args)
    log_path = REPO / WORK / "logs" / f"{tool}-{label}.log"
    res = ingest_measure.run_measured(cmd, REPO / out, log_path, REPO, tool_env(args.tool_env[tool]),
                                      args.timeout, server_pid=server_pid)
    if res.returncode != 0 or res.successes == 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"{tool} {label} run failed (exit code {res.returncode}, "
                         f"{res.successes} successes); log {log_path}:\n{tail}")
    log.info("%s %s: %d successes in %.1f s (CPU %.1f s, nginx %.1f s, other processes %.1f s, "
             "sampler %.1f s), peak PSS %.0f MB, peak RSS-sum %.0f MB", tool, label, res.successes,
             res.wall_s, res.cpu_s, res.server_cpu_s, res.background_cpu_s, res.sampler_cpu_s,
             res.peak_pss_mb, res.peak_rss_mb)
    if res.background_cpu_s > 0.1 * res.wall_s * len(os.sched_getaffinity(0)):
        log.warning("other processes used %.0f CPU s during this run: the machine was not "
                    "idle, so timings are noisy", res.background_cpu_s)
    return res, shlex.join(cmd)


def run_best(tool: str, label: str, urls: Path, args: argparse.Namespace, server_pid: int):
    """The fastest of --repeat runs."""
    runs = [run_one(tool, label, urls, args, server_pid) for _ in range(args.repeat)]
    return min(runs, key=lambda run: run[0].wall_s)


def measure_tool(tool: str, lists: dict[str, Path], args, server_pid: int) -> ingest_report.ToolSummary:
    """Warm-up (page cache, imports), then small and large runs; images/s from the difference."""
    run_one(tool, "warmup", lists["warmup"], args, server_pid)
    small, _ = run_best(tool, "small", lists["small"], args, server_pid)
    large, command = run_best(tool, "large", lists["large"], args, server_pid)
    d_images, d_wall = large.successes - small.successes, large.wall_s - small.wall_s
    if d_images <= 0 or d_wall <= 0:
        raise BenchError(f"{tool}: the large run was not larger than the small one "
                         f"({d_images} images, {d_wall:.1f} s); raise --num-urls")
    rate = d_images / d_wall
    startup = large.wall_s - large.successes / rate
    log.info("%s: %.1f images/s, start-up %.1f s", tool, rate, startup)
    return ingest_report.ToolSummary(tool, tool_version(tool), rate, startup, small, large, command,
                                     dict(args.tool_env[tool]))


def image_dir(args: argparse.Namespace) -> Path:
    """The photos of this size mix (each mix its own folder, so switching mixes rewrites nothing)."""
    mixed = args.sides == ingest_data.SIDES["mixed"]
    return REPO / WORK / ("images" if mixed else "images-{}-{}".format(*args.sides))


def write_lists(base_url: str, images: list[dict], args) -> dict[str, Path]:
    ingest_data.write_row_files(image_dir(args), images, args.num_urls)
    sizes = {"warmup": min(200, args.small), "small": args.small, "large": args.num_urls}
    lists = {}
    for label, n in sizes.items():
        lists[label] = WORK / f"urls-{label}.csv"
        ingest_data.write_url_list(REPO / lists[label], base_url, images, n)
    return lists


def check_shards(args: argparse.Namespace) -> None:
    per_round = args.processes * SAMPLES_PER_SHARD
    for label, n in (("--small", args.small), ("--num-urls", args.num_urls)):
        if n % per_round:
            log.warning("%s %d is not a multiple of processes x %d samples per shard: "
                        "some processes idle at the end, which skews images/s",
                        label, n, SAMPLES_PER_SHARD)


def run_bench(args: argparse.Namespace) -> None:
    check_shards(args)
    if "img2dataset" in args.tools:
        ensure_img2dataset()
    if "clipline" in args.tools:
        ensure_clipline()
    images = ingest_data.build_images(image_dir(args), args.num_images, sides=args.sides)
    with ingest_server.serve(image_dir(args), REPO / WORK / "nginx") as server:
        lists = write_lists(server.base_url, images, args)
        rows = [measure_tool(tool, lists, args, server.process.pid) for tool in args.tools]
    floor = ingest_floor.floor_ms(image_dir(args))
    log.info("CPU floor: %.2f ms per image on one thread", floor)
    setup = {"floor_ms": floor, "num_urls": args.num_urls, "small": args.small, "num_files": len(images),
             "server": server.kind, "processes": args.processes, "threads": args.threads,
             "repeat": args.repeat, "sides": args.sides}
    command = shlex.join(["python", "bench/ingest.py", *args.argv])
    section = ingest_report.render_section(rows, command, setup)
    out = args.out if args.out.is_absolute() else REPO / args.out
    update_section(out, ingest_report.heading(args.sides), section)
    log.info("wrote %s:\n%s", out, section)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run_bench(args)
    except RuntimeError as exc:  # BenchError, or the file server failing to start
        log.error("bench-ingest failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
