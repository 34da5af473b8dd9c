"""bench-train's variant settings: what each tool's command gains for SigLIP, gradient accumulation and data mixing,
and the report's table comparing the tools on each.

A variant is a function of the bench's setting returning the options it sets, per tool: each replaces the base
command's option of that name, or is added at the end of the command. Every variant runs open_clip's trainer and
`clipline train --workers 0` on the same shards with otherwise the same settings as `base`.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Options = dict[str, tuple[str, ...]]  # option -> its values (none for a switch), in command order
VARIANT_TOOLS = ("openclip", "local")  # the tools every variant but base runs; base also runs the ray mode
ACCUM_FREQ = 4  # micro-batches per optimizer step in `accum`: 4 x 32 = base's 128 samples
MIX_WEIGHTS = ("0.7", "0.3")  # `mixing`: weight of each shard of the first and of the second half of the shards


@dataclass(frozen=True)
class Setting:
    """What the variants derive their options from."""

    batch_size: int  # samples per optimizer step, every variant
    shards_dir: Path
    num_shards: int


@dataclass(frozen=True)
class Overrides:
    """Options a variant sets, per tool."""

    openclip: Options
    clipline: Options


def shard_pattern(shards_dir: Path, first: int, end: int) -> str:
    """The brace pattern of shards first .. end - 1, as both tools expand it."""
    return f"{shards_dir}/{{{first:05d}..{end - 1:05d}}}.tar"


def base(setting: Setting) -> Overrides:
    """CLIP loss, the batch in one step"""
    return Overrides({}, {})


def siglip(setting: Setting) -> Overrides:
    """SigLIP loss (sigmoid, with a learned bias)"""
    return Overrides({"--siglip": ()}, {"--loss": ("siglip",)})


def accum(setting: Setting) -> Overrides:
    """gradient accumulation: the batch as 4 micro-batches (features cached, one loss over the batch)"""
    options = {"--accum-freq": (str(ACCUM_FREQ),), "--batch-size": (str(setting.batch_size // ACCUM_FREQ),)}
    return Overrides(options, dict(options))


def mixing(setting: Setting) -> Overrides:
    """two sources, the first and the second half of the shards, drawn 0.7 / 0.3"""
    half = setting.num_shards // 2
    data = "::".join([shard_pattern(setting.shards_dir, 0, half),
                      shard_pattern(setting.shards_dir, half, setting.num_shards)])
    return Overrides({"--train-data": (data,), "--train-data-upsampling-factors": ("::".join(MIX_WEIGHTS),),
                      "--dataset-resampled": ()},
                     {"--data": (data,), "--data-weights": MIX_WEIGHTS, "--resampled": ()})


VARIANTS: dict[str, Callable[[Setting], Overrides]] = {"base": base, "siglip": siglip, "accum": accum,
                                                       "mixing": mixing}


def with_options(cmd: list[str], overrides: Options) -> list[str]:
    """`cmd` with each option of `overrides` replacing its values there, or added at the end. Tokens from the first
    `--option` on are options, each followed by its values (none of which starts with `--`)."""
    start = next(i for i, token in enumerate(cmd) if token.startswith("--"))
    options: Options = {}
    for token in cmd[start:]:
        if token.startswith("--"):
            name, options[token] = token, ()
        else:
            options[name] += (token,)
    options.update(overrides)
    return cmd[:start] + [token for name, values in options.items() for token in (name, *values)]


def options_lines(rates: dict[tuple[str, str], float], setting: Setting, skip: int, repeat: int,
                  loads: list[float]) -> list[str]:
    """The report's table of the variants: both tools' steady samples/s, by (variant, tool), and their options;
    `loads` are the 1-minute load averages at the start and end of the variants' runs."""
    lines = ["### Options (clipline --workers 0 vs open_clip, same shards)", "",
             "Each variant runs the commands above with these options, each replacing the option of the same name "
             "or added at the end: open_clip's trainer and clipline `--workers 0`. Steady samples/s as "
             f"above (the first {skip} steps left out; the fastest of {repeat} run(s) each), {setting.batch_size} "
             "samples per optimizer step in every variant, so `accum` compares with `base` directly; ratio = "
             "clipline / open_clip. 1-minute load average during the variants' runs (base's are above): "
             f"{min(loads):.2f} to {max(loads):.2f}.", "",
             "| variant | setting | open_clip steady samples/s | clipline steady samples/s | ratio "
             "| open_clip options | clipline options |", "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for name, variant in VARIANTS.items():
        if (name, "openclip") in rates and (name, "local") in rates:
            openclip, clipline = rates[name, "openclip"], rates[name, "local"]
            overrides = variant(setting)
            lines.append(f"| {name} | {variant.__doc__} | {openclip:.1f} | {clipline:.1f} "
                         f"| {clipline / openclip:.2f}x | {flags(overrides.openclip)} | {flags(overrides.clipline)} |")
    return [*lines, ""]


def flags(options: Options) -> str:
    """Options as a code span for the table; "(none)" for base."""
    if not options:
        return "(none)"
    return f"`{shlex.join(token for name, values in options.items() for token in (name, *values))}`"
