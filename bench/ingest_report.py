"""The `## Image ingest (make bench-ingest)` section of docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

import ingest_data
from docs_section import machine_info
from ingest_measure import MAIN_THREAD, RunResult

HEADING = "## Image ingest (make bench-ingest)"


def heading(sides: tuple[int, int]) -> str:
    """The section of a size mix: the default mix's keeps the old heading."""
    if sides == ingest_data.SIDES["mixed"]:
        return HEADING
    return f"## Image ingest, photos of {sides[0]}-{sides[1]} px (make bench-ingest)"


TOP_PROCESSES = 8  # rows of the memory and CPU breakdowns; the rest are summed into one row


@dataclass
class ToolSummary:
    tool: str
    version: str
    images_per_s: float
    startup_s: float
    small: RunResult
    large: RunResult
    command: str  # large run
    env: dict[str, str] = field(default_factory=dict)  # settings the harness adds to the environment

    @property
    def successes(self) -> int:
        return self.large.successes

    def cpu_ms(self) -> float:
        """CPU per stored image, start-up included: steadier than images/s on a busy machine."""
        return 1000 * self.large.cpu_s / self.successes if self.successes else float("nan")

    def steady(self, large: float, small: float) -> float:
        """ms per image of a CPU figure between the small and the large run (start-up cancels out)."""
        d_images = self.large.successes - self.small.successes
        return 1000 * (large - small) / d_images if d_images > 0 else float("nan")


def ratio_line(rows: list[ToolSummary]) -> str:
    by_tool = {r.tool: r for r in rows}
    ours, theirs = by_tool.get("clipline"), by_tool.get("img2dataset")
    if not ours or not theirs or theirs.images_per_s <= 0:
        return "Ratio clipline/img2dataset: n/a (only one tool was run)."
    speed = ours.images_per_s / theirs.images_per_s
    pss = ours.large.peak_pss_mb / theirs.large.peak_pss_mb
    rss = ours.large.peak_rss_mb / theirs.large.peak_rss_mb
    cpu = ours.cpu_ms() / theirs.cpu_ms()
    return (f"**Ratio clipline/img2dataset: {speed:.2f}x images/s, {pss:.2f}x peak PSS** ({rss:.2f}x peak "
            f"summed RSS), {cpu:.2f}x CPU per image.")


def describe(setup: dict, rows: list[ToolSummary]) -> list[str]:
    data = (f"{setup['num_urls']} URLs, each its own JPEG file: one of {setup['num_files']} "
            "real photos (random crops of scikit-image's sample photos, longest side "
            f"{setup['sides'][0]}-{setup['sides'][1]} px, quality 90) with the row number in a JPEG comment, so no two "
            f"files share bytes; served by {setup['server']} (1 worker process) on 127.0.0.1")
    settings = (f"{setup['processes']} processes x {setup['threads']} threads, image size "
                "256, center_crop, jpg, 1000 samples per shard; clipline's per-host limit raised to "
                f"{setup['threads']} (all URLs share one host; img2dataset has no such limit)")
    env = "; ".join(f"{r.tool}: " + (", ".join(f"`{k}={v}`" for k, v in r.env.items()) or "none")
                    for r in rows)
    method = ("images/s = (successes large - successes small) / (wall large - wall small), "
              f"the small run being the first {setup['small']} URLs, so start-up counts "
              "apart; start-up s = wall large - successes large / images/s; wall s, CPU "
              "(user + system of every process of the tool) and successes are those of the large run, "
              f"each run being the fastest of {setup['repeat']}, after one warm-up run of 200 URLs")
    memory = ("peak PSS = the highest sum, over the tool's whole process tree (every descendant by "
              "parent pid: Ray's gcs_server, raylet, agents and workers, Prefect's server, img2dataset's "
              "worker processes), of each process's proportional set size (`Pss:` of "
              "/proc/<pid>/smaps_rollup), in which a page shared by n processes counts 1/n in each: the "
              "memory the tool really holds. Peak summed RSS counts shared pages once per process and so "
              "overstates tools made of many processes. The tree is walked and its RSS summed every 0.2 s; "
              "PSS is read every 2 s and whenever a process appears or the summed RSS rises by 2% (each "
              "read makes the kernel walk the page tables: ~13 ms per GB of RSS)")
    return [f"- Data: {data}", f"- Settings, same for both: {settings}",
            f"- Environment set by the harness: {env}", f"- Method: {method}", f"- Memory: {memory}"]


def table(rows: list[ToolSummary], num_urls: int) -> list[str]:
    lines = ["| tool | images/s | start-up s | wall s | CPU ms/image | peak PSS MB | peak RSS-sum MB "
             "| successes |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.tool} {r.version} | {r.images_per_s:.1f} | {r.startup_s:.1f} "
                     f"| {r.large.wall_s:.1f} | {r.cpu_ms():.1f} | {r.large.peak_pss_mb:.0f} "
                     f"| {r.large.peak_rss_mb:.0f} | {r.successes} / {num_urls} |")
    return lines


def memory_breakdown(r: ToolSummary) -> list[str]:
    """Per process name at the PSS peak of the large run, largest first."""
    items = sorted(r.large.pss_by_name.items(), key=lambda kv: -kv[1][0])
    shown, rest = items[:TOP_PROCESSES], items[TOP_PROCESSES:]
    total = r.large.peak_pss_mb
    lines = [f"{r.tool}: peak PSS {total:.0f} MB, {r.large.peak_pss_at_s:.0f} s into the large run "
             f"({r.large.wall_s:.0f} s):", "",
             "| process | count | PSS MB | share |", "| --- | ---: | ---: | ---: |"]
    for name, (mb, n) in shown:
        lines.append(f"| {name} | {n} | {mb:.0f} | {100 * mb / total:.0f}% |")
    if rest:
        mb, n = sum(v[0] for _, v in rest), sum(v[1] for _, v in rest)
        lines.append(f"| other ({', '.join(name for name, _ in rest)}) | {n} | {mb:.0f} "
                     f"| {100 * mb / total:.0f}% |")
    return lines + [""]


def thread_kind(thread: str) -> str:
    if thread == MAIN_THREAD:
        return "main thread"
    if thread == "(unsampled)":
        return "not sampled"
    return "other threads"


def cpu_breakdown(r: ToolSummary) -> list[str]:
    """CPU per process name (and main thread vs. the others): large run, and steady state."""
    names = sorted(r.large.cpu_by_name, key=lambda n: -r.large.cpu_by_name[n])
    shown, rest = names[:TOP_PROCESSES - 1], names[TOP_PROCESSES - 1:]
    lines = [f"{r.tool}:", "",
             "| process | CPU s, large run | ms/image, large run | ms/image, steady state |",
             "| --- | ---: | ---: | ---: |"]

    def row(label: str, large: float, small: float) -> str:
        per_image = 1000 * large / r.successes if r.successes else float("nan")
        steady = max(0.0, r.steady(large, small))  # below 0: start-up work, timing noise
        return f"| {label} | {large:.1f} | {per_image:.2f} | {steady:.2f} |"

    for name in shown:
        lines.append(row(name, r.large.cpu_by_name[name], r.small.cpu_by_name.get(name, 0.0)))
        threads: dict[str, list[float]] = {}
        for run, i in ((r.large, 0), (r.small, 1)):
            for (proc, thread), cpu in run.cpu_by_thread.items():
                if proc == name:
                    threads.setdefault(thread_kind(thread), [0.0, 0.0])[i] += cpu
        if len(threads) > 1 and r.large.cpu_by_name[name] > 0.1 * r.large.cpu_s:
            for kind, (large, small) in sorted(threads.items(), key=lambda kv: -kv[1][0]):
                lines.append(row(f"&nbsp;&nbsp;{kind}", large, small))
    if rest:
        large = sum(r.large.cpu_by_name[n] for n in rest)
        small = sum(r.small.cpu_by_name.get(n, 0.0) for n in rest)
        lines.append(row(f"other ({len(rest)} names)", large, small))
    lines.append(row("file server (nginx), not the tool's", r.large.server_cpu_s, r.small.server_cpu_s))
    return lines + [""]


def _time_use(group) -> str:
    """'on a CPU a%, waiting for one b%, neither c%' of a ThreadGroup's lifetime (per thread)."""
    on, wait = group.cpu_s / group.alive_s, group.wait_s / group.alive_s
    return f"on a CPU {100 * on:.0f}%, waiting for one {100 * wait:.0f}%, neither {100 * max(0.0, 1 - on - wait):.0f}%"


def limits(rows: list[ToolSummary]) -> list[str]:
    """What bounds each tool's throughput: steady-state CPU split, and how much CPU its threads wanted."""
    ncpu = len(os.sched_getaffinity(0))
    out = []
    for r in rows:
        d_wall = r.large.wall_s - r.small.wall_s
        tool = r.steady(r.large.cpu_s, r.small.cpu_s)
        server = r.steady(r.large.server_cpu_s, r.small.server_cpu_s)
        other = r.steady(r.large.sampler_cpu_s + r.large.background_cpu_s,
                         r.small.sampler_cpu_s + r.small.background_cpu_s)
        busy = (tool + server + other) * r.images_per_s / 1000  # CPUs busy in steady state
        wanted = (r.large.runnable_s - r.small.runnable_s) / d_wall  # CPUs the tool's threads wanted
        top = max(r.large.cpu_by_name, key=lambda n: r.large.cpu_by_name[n] - r.small.cpu_by_name.get(n, 0.0))
        top_ms = r.steady(r.large.cpu_by_name[top], r.small.cpu_by_name.get(top, 0.0))
        main = r.steady(*(sum(c for (p, t), c in run.cpu_by_thread.items() if p == top and t == MAIN_THREAD)
                          for run in (r.large, r.small)))
        others = r.steady(*(sum(c for (p, t), c in run.cpu_by_thread.items()
                                if p == top and t not in (MAIN_THREAD, "(unsampled)"))
                            for run in (r.large, r.small)))
        text = (f"- {r.tool}: between the small and the large run ({d_wall:.0f} s) the machine's {ncpu} CPUs "
                f"were {100 * busy / ncpu:.0f}% busy: {tool:.2f} ms CPU per image in the tool, {server:.2f} ms "
                f"in nginx, {other:.2f} ms in other processes (the sampler included). {top} took {top_ms:.2f} ms "
                f"per image: {main:.2f} ms on its main thread and {others:.2f} ms on its other threads. "
                f"Meanwhile the tool's threads were runnable (on a CPU or waiting for one) {wanted:.2f} CPUs' "
                f"worth on average: ")
        text += ("as much as the machine has, so more CPU would make it faster." if wanted >= 0.95 * ncpu
                 else f"less than the {ncpu} CPUs, so it is not bound by the number of CPUs but by how much "
                 "work its threads have ready (the GIL, an event loop, waits on I/O or on each other).")
        main_group = r.large.busy_threads.get((top, MAIN_THREAD))
        other_group = r.large.busy_threads.get((top, "other"))
        if main_group and main_group.alive_s > 0:
            text += f" Over the large run the main thread of each {top} was {_time_use(main_group)}"
            if other_group and other_group.alive_s > 0:
                text += (f"; its other busy threads ({other_group.threads} in all, each on a CPU at least 5% of "
                         f"its life) were each {_time_use(other_group)}")
            text += "."
        # CPUs left to the tool and the server once other processes took theirs, and the rate they allow
        free = ncpu - other * r.images_per_s / 1000
        ceiling = free * 1000 / (tool + server)
        if free < 0.75 * ncpu:
            text += (f" Other processes took {ncpu - free:.1f} of the {ncpu} CPUs meanwhile, so images/s is "
                     f"lower than on an idle machine; at {tool + server:.2f} ms per image (tool + nginx) all {ncpu} "
                     f"CPUs would allow at most {ncpu * 1000 / (tool + server):.0f} images/s.")
        else:
            text += (f" The {free:.1f} CPUs left by other processes allow {ceiling:.0f} images/s at "
                     f"{tool + server:.2f} ms per image (tool + nginx); it made {r.images_per_s:.0f}, "
                     f"{100 * r.images_per_s / ceiling:.0f}% of that.")
        out.append(text)
    return out


def floor_line(rows: list[ToolSummary], floor_ms: float, ncpu: int) -> str:
    """Each tool's images/s as a share of the CPU floor: the image work alone on every CPU (bench/ingest_floor.py)."""
    rate = 1000 * ncpu / floor_ms
    shares = ", ".join(f"{r.tool} {100 * r.images_per_s / rate:.0f}%" for r in rows)
    return (f"CPU floor: clipline's `process_image` alone (draft decode, resize with the crop folded in, JPEG encode "
            f"at quality 95) in a tight loop over the photos' bytes, one thread, took {floor_ms:.2f} ms per image "
            f"(`python bench/ingest_floor.py`), so {ncpu} CPUs doing nothing else would make {rate:.0f} images/s. "
            f"Share of that floor: **{shares}**.")


def render_section(rows: list[ToolSummary], command: str, setup: dict) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [heading(setup["sides"]), "", f"- Date: {now}", f"- Machine: {machine_info()}",
             f"- Command: `{command}`", *describe(setup, rows), "",
             *table(rows, setup["num_urls"]), "", ratio_line(rows), ""]
    ncpu = len(os.sched_getaffinity(0))
    if setup.get("floor_ms"):
        lines += [floor_line(rows, setup["floor_ms"], ncpu), ""]
    load = ", ".join(f"{r.tool} {r.large.loadavg_before:.1f}" for r in rows)
    background = ", ".join(f"{r.tool} {r.large.background_cpu_s:.0f} CPU-s "
                           f"({100 * r.large.background_cpu_s / (r.large.wall_s * ncpu):.0f}% of the machine)"
                           for r in rows)
    lines += [f"Load: 1-minute load average at the start of the large runs: {load}. CPU used by other "
              f"processes (not the tool, nginx or the sampler) during the large runs: {background}."]
    if any(r.large.background_cpu_s > 0.1 * r.large.wall_s * ncpu for r in rows):
        lines += ["**The machine was busy with other processes during these runs: images/s and start-up "
                  "are lower and noisier than on an idle machine (CPU ms/image and memory much less so).**"]
    lines += ["", "### Where the memory goes (at the peak of PSS, large run)", ""]
    for r in rows:
        lines += memory_breakdown(r)
    lines += ["### Where the CPU goes", "",
              "Per process name, with the main thread and the other threads apart for the largest; "
              "steady state = (large run - small run) / (successes large - successes small), start-up "
              "excluded (a process whose CPU is all start-up shows about 0). clipline's shard workers "
              "(ray::_crawl_shard_task) run the download event loop (aiohttp, SHA-256, tar and JSON writing) "
              "on their main thread and decode/resize/encode on 2 decode threads (the other threads, with "
              "Ray's gRPC threads); img2dataset's workers decode/resize/encode and write on their main "
              "thread and download on a pool of threads.", ""]
    for r in rows:
        lines += cpu_breakdown(r)
    lines += ["What bounds throughput:", "", *limits(rows), "",
              "Sampler overhead (this harness reading /proc, on the same CPUs), large runs: "
              + ", ".join(f"{r.tool} {r.large.sampler_cpu_s:.1f} CPU-s" for r in rows) + ".",
              "", "Commands (large run):", "", "```"]
    lines += [" ".join([*(f"{k}={v}" for k, v in r.env.items()), r.command]) for r in rows]
    lines += ["```", ""]
    return "\n".join(lines)

