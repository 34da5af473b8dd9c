"""`make bench-train-ddp`: where training's CPU per sample goes when workers are added on one machine.

bench-cluster finds that CPU per training sample grows from 1 to 3 worker nodes on a 2-core machine. This bench
takes the step apart: W processes (torch.distributed, gloo over loopback, one intra-op thread each, as Ray Train
gives a 1-CPU worker) each run the training step of `clipline-tiny` (forward, open_clip's ClipLoss gathering the
features of every worker, backward, AdamW) on a fixed batch of random pixels and tokens, with no data loading,
no Ray and no results store. Each variant differs in what happens to the gradients:

- no DDP: none are exchanged (the features still are): the cost of W processes sharing the cores, no more;
- DDP, no exchange: DistributedDataParallel with a communication hook that sends nothing (its bucket copies);
- DDP, torch's defaults: the gradients all-reduced, as `ray.train.torch.prepare_model` does by default;
- DDP, gradients as bucket views: `pipelines/train/loop.py`'s DDP_OPTIONS;
- clipline's: those options, and the token embedding left out of DDP and exchanged by the rows the step's tokens
  used (`pipelines/train/embedding_rows.py`), as the training loop does.

The tokens are random over the whole vocabulary (64 x 32 per process: about 2,000 distinct rows each), more
rows than real captions touch: the row exchange sends no less than it would in training.

CPU is each process's user + system time over the steps after --warmup, summed over the W processes.

    python bench/train_ddp.py [--workers 1 2 3] [--steps 45] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_section import machine_info, update_section, versions
from ingest_server import free_port

from clipline.pipelines.train.embedding_rows import EmbeddingRows, token_embeddings
from clipline.pipelines.train.loop import DDP_OPTIONS

log = logging.getLogger("bench.train_ddp")

HEADING = "## Training CPU per sample by worker count, step by step (make bench-train-ddp)"
MODEL = "clipline-tiny"


def _silent(state, bucket):  # no annotations: DDP checks them against its own types, which postponed ones fail
    """A DDP communication hook that exchanges nothing: what DDP costs besides the all-reduce."""
    done = torch.futures.Future()
    done.set_result(bucket.buffer())
    return done


def _no_ddp(model, world):
    return model, None


def _ddp_silent(model, world):
    model = torch.nn.parallel.DistributedDataParallel(model)
    model.register_comm_hook(None, _silent)
    return model, None


def _ddp(model, world, **options):
    return torch.nn.parallel.DistributedDataParallel(model, **options), None


def _clipline(model, world):
    rows = EmbeddingRows.prepare(model, token_embeddings(model), world)
    return torch.nn.parallel.DistributedDataParallel(model, **DDP_OPTIONS), rows


OPTIONS = ", ".join(f"{k}={v}" for k, v in DDP_OPTIONS.items())
VARIANTS = {  # name -> (model, world) -> (the model to step, the token-embedding exchange or None)
    "no DDP (features gathered, gradients not exchanged)": _no_ddp,
    "DDP, no exchange (a hook that sends nothing)": _ddp_silent,
    "DDP, torch's defaults": _ddp,
    f"DDP, {OPTIONS}": lambda model, world: _ddp(model, world, **DDP_OPTIONS),
    f"clipline's: DDP, {OPTIONS}; token embedding by used rows": _clipline,
}


def _worker(rank: int, world: int, variant: str, args: argparse.Namespace, init: str, out: str) -> None:
    import open_clip
    from open_clip.loss import ClipLoss

    from clipline.pipelines.models.registry import register_clipline_configs

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    register_clipline_configs()
    torch.manual_seed(0)
    model = open_clip.create_model(MODEL, output_dict=True)
    model, rows = VARIANTS[variant](model, world) if world > 1 else (model, None)
    loss_fn = ClipLoss(local_loss=True, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(rank)
    images = torch.randn(args.batch_size, 3, 64, 64, generator=generator)
    tokens = torch.randint(1, 49408, (args.batch_size, 32), generator=generator)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            dist.barrier()
            start, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(**model(images, tokens))
        loss.backward()
        if rows is not None:
            rows([tokens])
        optimizer.step()
        loss.item()
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)
    Path(f"{out}.{rank}").write_text(f"{cpu} {time.perf_counter() - started}")
    dist.destroy_process_group()


def measure(world: int, variant: str, args: argparse.Namespace) -> tuple[float, float]:
    """CPU ms per sample (all processes) and wall s of one run."""
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as folder:
        out = os.path.join(folder, "rank")
        mp.spawn(_worker, args=(world, variant, args, f"tcp://127.0.0.1:{free_port()}", out), nprocs=world)
        rows = [[float(x) for x in Path(f"{out}.{rank}").read_text().split()] for rank in range(world)]
    samples = args.steps * args.batch_size * world
    return 1000 * sum(cpu for cpu, _ in rows) / samples, max(wall for _, wall in rows)


def report(results: dict[tuple[int, str], list[float]], args: argparse.Namespace, started: str) -> str:
    base = statistics.median(results[(1, next(iter(VARIANTS)))])
    lines = [HEADING, "",
             f"- Date: {started}", f"- Machine: {machine_info()}",
             f"- Versions: {versions('torch', 'open_clip_torch')}",
             f"- Command: `{' '.join(['python bench/train_ddp.py', *args.argv])}`",
             f"- Work: `{MODEL}`, fp32, {args.batch_size} samples per process per step, {args.steps} steps timed "
             f"after {args.warmup}; median of {args.repeats} runs (each run in the last column). One process has "
             "nothing to exchange: every row is compared with its figure", "",
             "| processes | variant | CPU ms/sample | vs 1 process | runs |", "| ---: | --- | ---: | ---: | --- |"]
    for (world, variant), runs in results.items():
        median = statistics.median(runs)
        lines.append(f"| {world} | {variant if world > 1 else 'one process'} | {median:.2f} | {median / base:.2f}x | "
                     f"{', '.join(f'{r:.2f}' for r in runs)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3], help="process counts to measure")
    p.add_argument("--steps", type=int, default=40, help="steps timed per run")
    p.add_argument("--warmup", type=int, default=5, help="steps run before the timing starts")
    p.add_argument("--batch-size", type=int, default=64, help="samples per process per step (bench-cluster's)")
    p.add_argument("--repeats", type=int, default=3, help="runs per row; the median counts")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="the page to update")
    args = p.parse_args(argv)
    if 1 not in args.workers or min(args.workers) < 1:
        p.error("--workers needs 1 (every row is compared with one process) and counts of at least 1")
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = [(1, next(iter(VARIANTS)))]
    rows += [(w, v) for w in sorted(args.workers) if w > 1 for v in VARIANTS]
    results: dict[tuple[int, str], list[float]] = {row: [] for row in rows}
    for repeat in range(args.repeats):
        for world, variant in rows:  # interleaved, so a slow spell of the machine touches every row alike
            cpu, wall = measure(world, variant, args)
            results[(world, variant)].append(cpu)
            log.info("run %d: %d processes, %s: %.2f CPU ms/sample, %.1f s", repeat + 1, world, variant, cpu, wall)
    section = report(results, args, started)
    update_section(args.out, HEADING, section)
    log.info("\n%s", section)


if __name__ == "__main__":
    main()
