"""Prefect tasks of the pipeline flow that are not stages: checks, class names, report and summary."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipelines import stages
from pipelines.config import PipelineConfig, ReportConfig
from pipelines.report.page import write_report


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


def _figure(stage: str, result: dict) -> str:
    keys = {"ingest_images": ("successes", "samples"), "ingest_held_out": ("successes", "samples"),
            "ingest_videos": ("successes", "samples"), "train_clip": ("final_loss", "steps"),
            "train_video": ("final_loss", "steps")}.get(stage, ())
    return ", ".join(f"{k} {result[k]:.4g}" if isinstance(result.get(k), float) else f"{k} {result.get(k)}"
                     for k in keys if k in result)


@task(name="publish_pipeline_summary", cache_policy=NO_CACHE)
def publish_pipeline_summary(results: dict[str, dict], cached: dict[str, bool], report: str) -> str:
    """A markdown artifact: each stage, whether it ran or came from the cache, its key figures, the report."""
    lines = ["| stage | state | figures |", "| --- | --- | --- |"]
    lines += [f"| {stage} | {'cached' if cached[stage] else 'ran'} | {_figure(stage, result)} |"
              for stage, result in results.items()]
    markdown = "\n".join(lines) + f"\n\nReport: `{report}`; `clipline sql --query leaderboard` ranks the checkpoints."
    create_markdown_artifact(markdown, key="pipeline-summary", description="The pipeline's stages")
    return markdown
