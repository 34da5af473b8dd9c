"""The `pipeline` flow: ingest -> (curate) -> train -> evaluate -> distances -> report, as one DAG of stage flows.

Each stage is a flow run of its own (ingest_images, train_clip, ...), started
by the `run_stage` task. Stages that do not depend on each other run at once
(the three ingests; evaluation and video training). `run_stage` results are
persisted in the workdir and cached on the stage's config and the code
version, so rerunning a pipeline after a failure skips the stages that
finished; a stage that failed for a transient reason is retried, one that
failed on bad input (ClipLineError) is not.
"""

from __future__ import annotations

import hashlib
import importlib

from prefect import flow, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.context import get_run_context
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.futures import as_completed
from pydantic import BaseModel

from clipline.pipelines import stages, storage
from clipline.pipelines.config import PipelineConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.version import code_version
from clipline.tasks.pipeline import preflight, publish_pipeline_summary, render_report, write_classnames

# stage -> (module, flow function)
STAGE_FLOWS: dict[str, tuple[str, str]] = {
    "ingest_images": ("clipline.flows.ingest", "ingest_images"),
    "ingest_held_out": ("clipline.flows.ingest", "ingest_images"),
    "ingest_videos": ("clipline.flows.ingest_videos", "ingest_videos"),
    "curate": ("clipline.flows.curate", "curate"),
    "train_clip": ("clipline.flows.train", "train_clip"),
    "train_video": ("clipline.flows.train_video", "train_video"),
    "evaluate": ("clipline.flows.evaluate", "evaluate"),
    "dataset_distance": ("clipline.flows.distance", "dataset_distance"),
    "train_coca": ("clipline.flows.train", "train_clip"),  # the optional captioning stages
    "caption": ("clipline.flows.caption", "caption_images"),
}
STAGE_RETRIES = 2


def _transient(task, task_run, state) -> bool:
    """Retry a stage unless its error is the user's input (ClipLineError): that fails the same way again."""
    try:
        state.result()
    except ClipLineError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be a lost worker, a network blip, a full disk
        return True
    return False


@task(name="run_stage", task_run_name="{stage}", retries=STAGE_RETRIES, retry_delay_seconds=[5, 30],
      retry_condition_fn=_transient, persist_result=True)
def run_stage(stage: str, config: BaseModel, code: str) -> dict:
    """Run one stage's flow (as a subflow run); `code` is the code version, part of the cache key."""
    module, name = STAGE_FLOWS[stage]
    result = getattr(importlib.import_module(module), name)(config)
    return result if isinstance(result, dict) else {"results": result}


def _storage(uri: str):
    """Prefect result and cache-key storage in the workdir (local disk or s3://, through fsspec), saved as a
    block named after the location (Prefect stores result locations server-side)."""
    block = LocalFileSystem(basepath=uri) if storage.is_local(uri) else RemoteFileSystem(
        basepath=uri, settings=storage.s3_options())
    block.save(f"clipline-results-{hashlib.sha256(uri.encode()).hexdigest()[:16]}", overwrite=True)
    return block


def _stage_task(workdir: str):
    folder = storage.join(workdir, ".prefect")
    policy = (INPUTS + TASK_SOURCE).configure(key_storage=_storage(storage.join(folder, "cache-keys")))
    return run_stage.with_options(result_storage=_storage(storage.join(folder, "results")), cache_policy=policy)


@flow(name="pipeline", validate_parameters=True)
def pipeline(config: PipelineConfig) -> dict:
    """Ingest, train, evaluate, compare datasets and write the report; rerun to resume after a failure."""
    configs = stages.stage_configs(config)  # every stage's config is valid before anything runs
    preflight(config)
    write_classnames(config)
    stage = _stage_task(config.workdir)
    code = code_version()
    progress = create_progress_artifact(0.0, key="pipeline-progress", description="Pipeline stages finished")
    futures, names = {}, {}
    for name, stage_config in configs.items():  # DAG order: dependencies come first
        waits = [futures[dep] for dep in stages.STAGE_DEPENDS[name] if dep in futures]
        futures[name] = stage.submit(name, stage_config, code, wait_for=waits)
        names[futures[name].task_run_id] = name
    results, cached, failed = {}, {}, []
    for done, future in enumerate(as_completed(list(futures.values())), start=1):
        name = names[future.task_run_id]
        future.wait()
        state = future.state
        if state.is_completed():
            results[name] = future.result()
            cached[name] = state.name == "Cached"
        else:
            failed.append(f"{name} ({state.message})")
        update_progress_artifact(progress, 100.0 * done / len(futures))
    if failed:
        raise RuntimeError(f"pipeline stages failed: {', '.join(failed)}; rerun the pipeline to resume from them")
    report = render_report(config)
    summary = publish_pipeline_summary(results, cached, report)
    return {"flow_run_id": str(get_run_context().flow_run.id), "stages": results, "cached": cached,
            "report": report, "summary": summary}
