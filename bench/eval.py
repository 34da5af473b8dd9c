"""`make bench-eval`: clipline eval vs clip_benchmark 1.6.2 on one checkpoint and one dataset: same numbers, wall time.

The dataset is --num-images held-out MNIST digits (tests/support/shards.py) exported in clip_benchmark's WebDataset
layout, with class names zero..nine, four templates and two captions per image. The checkpoint is clipline-tiny
trained by clipline (`fit`, in this process) for --steps on the other digits, reused when present.

clip_benchmark runs one task and one template set per call, so covering what one `clipline eval --task zeroshot
retrieval --strategy all` computes takes three calls: zero-shot with every template (prompt ensembling), zero-shot
with the first template alone, and retrieval (recall@1/5/10). clipline's `vote` strategy has no clip_benchmark
counterpart; it comes from the same feature pass. A fourth pair of calls, zero-shot ensemble alone in each tool,
compares one call with one call. Each metric must agree to --tolerance. The result replaces the
`## Evaluation (make bench-eval)` section of docs/benchmarks.md.

    python bench/eval.py [--num-images 1000] [--steps 100] [--repeat 2] [--num-workers 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from docs_section import machine_info, update_section

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

log = logging.getLogger("bench.eval")

WORK = REPO / ".bench" / "eval"
CB_VERSION = "1.6.2"
CB_VENV = REPO / ".bench" / "clip-benchmark-venv"
# clip_benchmark's accuracy code fails on numpy 2, and it imports requests and pycocoevalcap at start-up (ANCHORS.md).
CB_PACKAGES = [f"clip_benchmark=={CB_VERSION}", "numpy<2", "requests", "pycocoevalcap", "torch==2.14.1",
               "torchvision==0.29.1", "open_clip_torch==3.3.0"]
CLIPLINE = REPO / ".venv" / "bin" / "clipline"
CLASSNAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = ["a handwritten {c}.", "a photo of the digit {c}.", "a drawing of the number {c}.", "{c}."]
HEADING = "## Evaluation (make bench-eval)"
TRAIN_IMAGES = 4000  # digits 0..3999 train the checkpoint; evaluation digits come after them
RETRIEVAL_METRICS = [f"{side}_retrieval_recall@{k}" for k in (1, 5, 10) for side in ("image", "text")]


class BenchError(RuntimeError):
    """A step failed; main() logs the message and exits non-zero."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-images", type=int, default=1000, help="test images (MNIST digits after the first 4,000)")
    p.add_argument("--steps", type=int, default=100, help="training steps of the checkpoint (when trained here)")
    p.add_argument("--repeat", type=int, default=2, help="runs per command; the fastest counts")
    p.add_argument("--num-workers", type=int, default=0, help="clip_benchmark's --num_workers (clipline decodes "
                   "in its own process, so 0 compares like with like)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass, both tools")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted metric difference")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = p.parse_args(argv)
    if not 0 < args.num_images <= 5000 - TRAIN_IMAGES:
        p.error(f"--num-images must be 1..{5000 - TRAIN_IMAGES} (the digits after the training ones)")
    return args


def run_checked(cmd: list[str], what: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise BenchError(f"{what} failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return proc


def ensure_clip_benchmark() -> None:
    """clip_benchmark in its own venv (numpy<2 clashes with the project), created once."""
    stamp = CB_VENV / f".installed-{CB_VERSION}"
    if stamp.exists():
        return
    log.info("creating %s with clip_benchmark==%s (once; torch comes from the local pip cache)", CB_VENV, CB_VERSION)
    run_checked([sys.executable, "-m", "venv", str(CB_VENV)], "creating the clip_benchmark venv")
    run_checked([str(CB_VENV / "bin/pip"), "install", "-q", *CB_PACKAGES], "pip install clip_benchmark")
    stamp.touch()


def ensure_checkpoint(steps: int) -> str:
    """The latest checkpoint of WORK/run, trained here (Ray Train's local mode) when there is none."""
    from clipline.pipelines.config import StoreConfig, TrainConfig
    from clipline.pipelines.train.checkpoint import latest_checkpoint
    from clipline.pipelines.train.trainer import fit, plan_training
    from support.shards import write_digit_shards

    run = WORK / "run"
    if latest := latest_checkpoint(str(run)):
        log.info("reusing checkpoint %s", latest)
        return latest
    write_digit_shards(WORK / "train", num_shards=8, per_shard=TRAIN_IMAGES // 8)
    config = TrainConfig(data=str(WORK / "train" / "{00000..00007}.tar"), output_uri=str(run), steps=steps,
                         batch_size=64, lr=1e-3, warmup=10, workers=0, checkpoint_every=steps, data_workers=1,
                         augment=False, store=StoreConfig(results_uri=str(WORK / "train-results")))
    log.info("training clipline-tiny for %d steps on %d digits", steps, TRAIN_IMAGES)
    return fit(config, plan_training(config), "bench-eval")["checkpoint"]


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write_test_split(folder: Path, num_images: int, per_shard: int = 500) -> None:
    from support.shards import digit_images, png

    images, labels = digit_images()
    folder.mkdir(parents=True, exist_ok=True)
    starts = range(0, num_images, per_shard)
    for shard, start in enumerate(starts):
        members = {}
        for i in range(start, min(start + per_shard, num_images)):
            label, key = int(labels[TRAIN_IMAGES + i]), f"s{i:07d}"
            members[f"{key}.png"] = png(images[TRAIN_IMAGES + i])
            members[f"{key}.cls"] = str(label).encode()
            members[f"{key}.txt"] = f"a handwritten {CLASSNAMES[label]}\nthe digit {CLASSNAMES[label]}".encode()
        (folder / f"{shard}.tar").write_bytes(_tar(members))
    (folder / "nshards.txt").write_text(str(len(starts)))


def write_datasets(num_images: int) -> dict[str, Path]:
    """Three clip_benchmark roots over one test split: all templates, the first template, retrieval."""
    data = WORK / f"digits-{num_images}"
    roots = {name: data / name for name in ("ensemble", "single", "retrieval")}
    if not (roots["ensemble"] / "test" / "nshards.txt").exists():
        _write_test_split(roots["ensemble"] / "test", num_images)
    for name, root in roots.items():
        root.mkdir(parents=True, exist_ok=True)
        (root / "classnames.txt").write_text("\n".join(CLASSNAMES) + "\n")
        templates = TEMPLATES[:1] if name == "single" else TEMPLATES
        (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
        if name != "ensemble" and not (root / "test").exists():
            (root / "test").symlink_to("../ensemble/test")
    (roots["retrieval"] / "dataset_type.txt").write_text("retrieval\n")
    return roots


@dataclass(frozen=True)
class Timed:
    wall_s: float
    cpu_s: float  # user + sys of the process and every child it waited for
    output: str


def timed(cmd: list[str], what: str, env: dict, repeat: int, server_cpu=lambda: 0.0) -> Timed:
    """The fastest of `repeat` runs; `server_cpu()` reads the CPU seconds of a server the command talks to."""
    best = None
    for _ in range(repeat):
        before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu()
        started = time.perf_counter()
        proc = run_checked(cmd, what, env)
        wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) + server_cpu() - server_before
        if best is None or wall < best.wall_s:
            best = Timed(wall, cpu, proc.stdout)
        log.info("%s: %.1f s wall, %.1f s CPU", what, wall, cpu)
    return best


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def prefect_server(env: dict) -> Iterator[tuple[str, Callable[[], float]]]:
    """A Prefect API server (no UI, no background services) for the block: (API URL, its CPU seconds so far)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(REPO / ".venv/bin/prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
           "--no-services", "--no-ui", "--analytics-off"]
    with open(WORK / "prefect-server.log", "wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, server)
        yield url, lambda: _process_cpu_s(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)


def _wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"prefect server exited ({server.returncode}); see {WORK / 'prefect-server.log'}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise BenchError(f"prefect server at {url} not healthy after {timeout_s:.0f} s")


def clip_benchmark_command(checkpoint: str, root: Path, task: str, output: Path, args) -> list[str]:
    cmd = [str(CB_VENV / "bin/clip_benchmark"), "eval", "--model", f"local-dir:{checkpoint}", "--pretrained", "none",
           "--dataset", "wds/digits", "--dataset_root", str(root), "--task", task, "--output", str(output),
           "--batch_size", str(args.batch_size), "--num_workers", str(args.num_workers),
           "--no_amp", "--quiet"]  # fp32 like clipline: on CPU, amp autocasts to bfloat16
    return cmd + (["--recall_k", "1", "5", "10"] if task == "zeroshot_retrieval" else [])


def clipline_command(checkpoint: str, root: Path, tasks: list[str], strategy: str, args) -> list[str]:
    return [str(CLIPLINE), "eval", "--checkpoint", checkpoint, "--data", str(root), "--task", *tasks,
            "--strategy", strategy, "--batch-size", str(args.batch_size), "--json",
            "--results-uri", str(WORK / "results"), "--plots-dir", str(WORK / "plots")]


CB_RUNS = {  # name -> (root, clip_benchmark task)
    "ensemble": ("ensemble", "zeroshot_classification"),
    "single": ("single", "zeroshot_classification"),
    "retrieval": ("retrieval", "zeroshot_retrieval"),
}


def run_clip_benchmark(checkpoint: str, roots: dict[str, Path], args, env: dict) -> dict[str, tuple[Timed, dict]]:
    runs = {}
    for name, (root, task) in CB_RUNS.items():
        output = WORK / f"clip_benchmark-{name}.json"
        t = timed(clip_benchmark_command(checkpoint, roots[root], task, output, args), f"clip_benchmark {name}",
                  env, args.repeat)
        runs[name] = (t, json.loads(output.read_text())["metrics"])
    return runs


def _by_evaluation(output: str) -> dict[tuple[str, str | None], dict]:
    results = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {(r["task"], r["strategy"]): r["metrics"] for r in results}


def run_clipline(checkpoint: str, roots: dict[str, Path], args, env: dict) -> dict[str, tuple[Timed, dict]]:
    """One call for everything and one for zero-shot ensemble alone, against a running Prefect server; and the
    one call again with an ephemeral server of its own (what a first `clipline eval` on a laptop pays)."""
    everything = clipline_command(checkpoint, roots["ensemble"], ["zeroshot", "retrieval"], "all", args)
    alone = clipline_command(checkpoint, roots["ensemble"], ["zeroshot"], "ensemble", args)
    runs = {"ephemeral": timed(everything, "clipline eval, everything, ephemeral Prefect", env, args.repeat)}
    with prefect_server(env) as (url, server_cpu):
        served = {**env, "PREFECT_API_URL": url}
        runs["all"] = timed(everything, "clipline eval, everything", served, args.repeat, server_cpu)
        runs["ensemble"] = timed(alone, "clipline eval, zero-shot ensemble", served, args.repeat, server_cpu)
    return {name: (t, _by_evaluation(t.output)) for name, t in runs.items()}


def parity(cb: dict, cl: dict) -> list[tuple[str, str, float, float, float]]:
    """(comparison, metric, clip_benchmark, clipline, |difference|) for every metric both report."""
    everything, alone = cl["all"][1], cl["ensemble"][1]
    pairs = [("ensemble", everything[("zeroshot", "ensemble")]), ("single", everything[("zeroshot", "single")]),
             ("retrieval", everything[("retrieval", None)]), ("ensemble", alone[("zeroshot", "ensemble")])]
    if cl["ephemeral"][1] != everything:
        raise BenchError("clipline's two runs of the same call disagree")
    rows = []
    for name, ours in pairs:
        theirs = cb[name][1]
        for metric in [m for m in theirs if m in ours]:
            rows.append((name, metric, theirs[metric], ours[metric], abs(theirs[metric] - ours[metric])))
    return rows


CL_RUN_TITLES = {"all": "**one call**: zero-shot single + ensemble + vote, retrieval (Prefect server running)",
                 "ephemeral": "the same call, with its own ephemeral Prefect server",
                 "ensemble": "zero-shot ensemble alone (Prefect server running)"}
CB_RUN_TITLES = {"ensemble": f"zero-shot, {len(TEMPLATES)} templates (ensemble)",
                 "single": "zero-shot, first template (single)", "retrieval": "retrieval, recall@1/5/10"}


def timing_rows(cb: dict, cl: dict) -> list[str]:
    rows = [f"| clip_benchmark | {CB_RUN_TITLES[name]} | {t.wall_s:.1f} | {t.cpu_s:.1f} |"
            for name, (t, _) in cb.items()]
    wall, cpu = _total(cb, "wall_s"), _total(cb, "cpu_s")
    rows.append(f"| clip_benchmark | **the three calls** | **{wall:.1f}** | {cpu:.1f} |")
    for name, title in CL_RUN_TITLES.items():
        t = cl[name][0]
        rows.append(f"| clipline | {title} | {t.wall_s:.1f} | {t.cpu_s:.1f} |")
    return rows


def _total(runs: dict, field: str) -> float:
    return sum(getattr(t, field) for t, _ in runs.values())


def render(args, cb: dict, cl: dict, rows: list) -> str:
    cb_wall, cb_cpu = _total(cb, "wall_s"), _total(cb, "cpu_s")
    everything, ephemeral, alone, cb_one = cl["all"][0], cl["ephemeral"][0], cl["ensemble"][0], cb["ensemble"][0]
    worst = max(r[4] for r in rows)
    lines = [HEADING, "",
             f"clipline eval vs clip_benchmark {CB_VERSION} (its own venv, numpy<2) on one checkpoint and "
             f"{args.num_images} held-out MNIST digits in clip_benchmark's WebDataset layout (10 classes, "
             f"{len(TEMPLATES)} templates, 2 captions per image). Checkpoint: clipline-tiny trained by clipline for "
             f"{args.steps} steps on 4,000 other digits. Both tools: fp32 (clip_benchmark `--no_amp`: on CPU its "
             f"default amp autocasts to bfloat16), batch {args.batch_size}, CPU; clip_benchmark `--num_workers "
             f"{args.num_workers}`. Fastest of {args.repeat} runs each; wall time includes start-up; CPU is user + "
             f"system of the process and its children, plus the Prefect server's while it served the call. "
             f"Machine: {machine_info()}, load average {os.getloadavg()[0]:.1f} at the end of the run.", "",
             f"**Parity:** {len(rows)} metric comparisons, largest difference {worst:.2g} "
             f"({'within' if worst <= args.tolerance else 'OUTSIDE'} {args.tolerance:g}).", "",
             f"**Speed:** what clip_benchmark computes in three calls, one clipline call computes (plus the vote "
             f"strategy) from one image feature pass: {cb_wall:.1f} s vs {everything.wall_s:.1f} s wall with a "
             f"Prefect server running, **{cb_wall / everything.wall_s:.2f}x** ({cb_cpu / everything.cpu_s:.2f}x "
             f"in CPU time, the steadier figure on a shared machine); {ephemeral.wall_s:.1f} s "
             f"({cb_wall / ephemeral.wall_s:.2f}x) when the call starts its own ephemeral Prefect server. One call "
             f"each, zero-shot ensemble alone: {cb_one.wall_s:.1f} s vs {alone.wall_s:.1f} s "
             f"({cb_one.wall_s / alone.wall_s:.2f}x). Besides the shared image pass, clipline embeds each distinct "
             f"text once: this dataset's 2 captions per image are {2 * len(CLASSNAMES)} distinct texts, so its "
             f"retrieval costs little more than the images (datasets with unique captions gain less).", "",
             "| tool | call | wall s | CPU s |", "|---|---|---|---|", *timing_rows(cb, cl), "",
             "| clip_benchmark call | metric | clip_benchmark | clipline | difference |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {m} | {a:.6f} | {b:.6f} | {d:.1e} |" for n, m, a, b, d in rows]
    lines += ["", "Commands (`make bench-eval` runs them; CKPT and ROOT under .bench/eval):", "", "```",
              " ".join(clip_benchmark_command("CKPT", Path("ROOT"), "zeroshot_classification", Path("out.json"), args)),
              " ".join(clipline_command("CKPT", Path("ROOT"), ["zeroshot", "retrieval"], "all", args)), "```", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(WORK / "prefect")}  # a private Prefect database, warm after run 1
    env.pop("PREFECT_API_URL", None)  # the ephemeral run starts its own server; the others get the bench's
    try:
        ensure_clip_benchmark()
        checkpoint = ensure_checkpoint(args.steps)
        roots = write_datasets(args.num_images)
        cb = run_clip_benchmark(checkpoint, roots, args, env)
        cl = run_clipline(checkpoint, roots, args, env)
        rows = parity(cb, cl)
    except BenchError as e:
        log.error("%s", e)
        return 1
    update_section(args.out, HEADING, render(args, cb, cl, rows))
    log.info("wrote %s", args.out)
    failed = [r for r in rows if r[4] > args.tolerance]
    for name, metric, theirs, ours, diff in failed:
        log.error("parity: %s %s clip_benchmark %.6f clipline %.6f (|diff| %.2g)", name, metric, theirs, ours, diff)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
