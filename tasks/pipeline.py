"""Prefect tasks of the pipeline flow that are not stages: checks, class names, report and summary."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from clipline.pipelines import stages
from clipline.pipelines.config import PipelineConfig, ReportConfig
from clipline.pipelines.report.page import write_report


@task(name="preflight", cache_policy=NO_CACHE)
def preflight(config: PipelineConfig) -> None:
    """Inputs exist, storage takes writes and the Ray cluster answers, before any stage starts."""
    stages.preflight(config)


@task(name="write_classnames", cache_policy=NO_CACHE)
def write_classnames(config: PipelineConfig) -> str:
    """The class names for zero-shot classification, in the workdir."""
    return stages.write_classnames(config)


@task(name="render_report", cache_policy=NO_CACHE, retries=1)
def render_report(config: PipelineConfig) -> str:
    """The HTML report of the whole results store, in the workdir."""
    uri = write_report(ReportConfig(output_uri=stages.Layout(config.workdir).report, store=config.store))
    get_run_logger().info("report: %s", uri)
    return uri


def _fields(*keys: str):
    return lambda result: ", ".join(f"{k} {result[k]:.4g}" if isinstance(result[k], float) else f"{k} {result[k]}"
                                    for k in keys if result.get(k) is not None)


def _evaluation(result: dict) -> str:
    return ", ".join(f"{r['task']} {r['strategy'] or ''} acc1 {r['metrics']['acc1']:.3f}".replace("  ", " ")
                     for r in result.get("results", []) if "acc1" in r["metrics"])


def _distances(result: dict) -> str:
    pairs = [r for r in result["distances"] if r["dataset_a"] != r["dataset_b"]]
    return ", ".join(f"{r['space']} {r['dataset_a']}~{r['dataset_b']} excess {r['excess']:.3g}" for r in pairs)


def _captions(result: dict) -> str:
    captioned = result["results"]
    return f"{len(captioned)} captions, e.g. {captioned[0]['caption']!r}" if captioned else "no captions"


# stage -> the figures its summary line shows
FIGURES = {"ingest_images": _fields("successes", "samples"), "ingest_held_out": _fields("successes", "samples"),
           "ingest_videos": _fields("successes", "samples"), "curate": _fields("total", "kept"),
           "train_clip": _fields("final_loss", "steps"),
           "train_video": _fields("final_loss", "steps"), "evaluate": _evaluation, "dataset_distance": _distances,
           "train_coca": _fields("final_loss", "steps"), "caption": _captions}


def _figure(stage: str, result: dict) -> str:
    return FIGURES[stage](result)


@task(name="publish_pipeline_summary", cache_policy=NO_CACHE)
def publish_pipeline_summary(results: dict[str, dict], cached: dict[str, bool], report: str) -> str:
    """A markdown artifact: each stage, whether it ran or came from the cache, its key figures, the report."""
    lines = ["| stage | state | figures |", "| --- | --- | --- |"]
    lines += [f"| {stage} | {'cached' if cached[stage] else 'ran'} | {_figure(stage, result)} |"
              for stage, result in results.items()]
    markdown = "\n".join(lines) + f"\n\nReport: `{report}`; `clipline sql --query leaderboard` ranks the checkpoints."
    create_markdown_artifact(markdown, key="pipeline-summary", description="The pipeline's stages")
    return markdown
