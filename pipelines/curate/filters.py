"""The filters: each a registry entry that says whether it is on and which samples it removes.

A filter set is the intersection of its filters: a sample is kept when no
filter removes it. For the funnel, each filter reports how many samples it
removes alone (on the whole input) and how many it removes beyond all the
others (samples no other filter removes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clipline.pipelines.config.curate import CurateConfig
from clipline.pipelines.curate.dedup import duplicate_of
from clipline.pipelines.curate.table import ScoreTable
from clipline.pipelines.errors import ClipLineError


@dataclass(frozen=True)
class Filter:
    """A filter: when it is on (from the config), what it removes, and whether it reads captions."""

    name: str
    enabled: Callable[[CurateConfig], bool]
    removes: Callable[[ScoreTable, CurateConfig], np.ndarray]  # bool mask over the table's rows
    needs_captions: bool = False
    describe: Callable[[CurateConfig], str] = lambda c: ""


def _below(values: np.ndarray, threshold: float) -> np.ndarray:
    return ~(values >= threshold)  # NaN (no caption, no score) counts as below


def _top_fraction(table: ScoreTable, config: CurateConfig) -> np.ndarray:
    """Remove all but the ceil(fraction * n) highest CLIP scores; ties go to the smaller key (rows are sorted)."""
    keep = math.ceil(config.clip_score_top_fraction * len(table))
    scores = np.nan_to_num(table.clip_score.astype(np.float64), nan=-np.inf)
    order = np.lexsort((np.arange(len(table)), -scores))  # highest first, then row order
    removed = np.ones(len(table), bool)
    removed[order[:keep]] = False
    return removed | np.isnan(table.clip_score)


def _dedup(table: ScoreTable, config: CurateConfig) -> np.ndarray:
    return duplicate_of(table, config.dedup, config.threshold()) != np.arange(len(table))


def _contaminated(table: ScoreTable, config: CurateConfig) -> np.ndarray:
    flagged = table.eval_bits <= config.contamination_max_bits
    if config.contamination_min_cosine is not None:
        flagged |= table.eval_cosine >= config.contamination_min_cosine
    return flagged


FILTERS: dict[str, Filter] = {f.name: f for f in [
    Filter("min_clip_score", lambda c: c.min_clip_score is not None,
           lambda t, c: _below(t.clip_score, c.min_clip_score), needs_captions=True,
           describe=lambda c: f"CLIP score < {c.min_clip_score}"),
    Filter("clip_score_top_fraction", lambda c: c.clip_score_top_fraction is not None, _top_fraction,
           needs_captions=True, describe=lambda c: f"not in the top {c.clip_score_top_fraction:g} by CLIP score"),
    Filter("min_caption_words", lambda c: c.min_caption_words is not None,
           lambda t, c: t.caption_words < c.min_caption_words, needs_captions=True,
           describe=lambda c: f"caption under {c.min_caption_words} words"),
    Filter("min_image_size", lambda c: c.min_image_size is not None,
           lambda t, c: t.shorter_side < c.min_image_size, describe=lambda c: f"shorter side < {c.min_image_size} px"),
    Filter("max_aspect_ratio", lambda c: c.max_aspect_ratio is not None,
           lambda t, c: t.aspect_ratio > c.max_aspect_ratio, describe=lambda c: f"aspect ratio > {c.max_aspect_ratio}"),
    Filter("dedup", lambda c: c.dedup is not None, _dedup,
           describe=lambda c: f"{c.dedup} duplicate (threshold {c.threshold():g})"),
    Filter("decontaminate", lambda c: bool(c.decontaminate), _contaminated,
           describe=lambda c: f"within {c.contamination_max_bits} pHash bits of an eval image"
           + (f" or cosine >= {c.contamination_min_cosine}" if c.contamination_min_cosine is not None else "")),
]}


def active_filters(config: CurateConfig) -> list[Filter]:
    return [f for f in FILTERS.values() if f.enabled(config)]


def refuse_caption_filters(config: CurateConfig, where: str) -> None:
    """A ClipLineError naming the on filters that read captions, for shards that have none."""
    named = [f.name for f in active_filters(config) if f.needs_captions]
    if named:
        raise ClipLineError(f"{where} has no captions (no .txt members), so {', '.join(named)} cannot run",
                            "drop those filters, or curate shards with captions")


@dataclass(frozen=True)
class FilterOutcome:
    """One filter's effect on the input."""

    name: str
    rule: str
    removed: np.ndarray  # bool mask
    removed_alone: int
    removed_beyond_others: int
    remaining_after: int  # kept by this filter and every filter before it (the funnel)


def apply_filters(table: ScoreTable, config: CurateConfig) -> tuple[np.ndarray, list[FilterOutcome]]:
    """(kept mask, each filter's outcome); a filter that keeps nothing is an error unless allow_empty."""
    if not table.has_captions:
        refuse_caption_filters(config, "the data")
    masks = {f.name: f.removes(table, config) for f in active_filters(config)}
    outcomes, remaining = [], np.ones(len(table), bool)
    for f in active_filters(config):
        others = np.zeros(len(table), bool)
        for name, mask in masks.items():
            if name != f.name:
                others |= mask
        mask = masks[f.name]
        remaining &= ~mask
        outcomes.append(FilterOutcome(f.name, f.describe(config), mask, int(mask.sum()), int((mask & ~others).sum()),
                                      int(remaining.sum())))
    kept = ~np.any(list(masks.values()), axis=0) if masks else np.ones(len(table), bool)
    if not config.allow_empty:
        _refuse_empty(outcomes, kept)
    return kept, outcomes


def _refuse_empty(outcomes: list[FilterOutcome], kept: np.ndarray) -> None:
    for outcome in outcomes:
        if outcome.removed.all():
            raise ClipLineError(f"filter {outcome.name} ({outcome.rule}) keeps none of the {len(kept)} samples",
                                "loosen it, or pass --allow-empty")
    if not kept.any():
        raise ClipLineError(f"the filters {', '.join(o.name for o in outcomes)} together keep none of the "
                            f"{len(kept)} samples", "loosen one of them, or pass --allow-empty")
