"""The `evaluate` flow: checkpoints x datasets -> zero-shot, retrieval and linear-probe metrics in the store."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import EvalConfig
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.evaluate import evaluate_pairs, plan_evaluation, publish_eval_results


@flow(name="evaluate", validate_parameters=True)
def evaluate(config: EvalConfig) -> list[dict]:
    """Evaluate every (checkpoint, dataset) pair with clip_benchmark's metrics; one image feature pass per pair."""
    plan = plan_evaluation(config)
    with recorded_run("evaluate", config, config.store, run_id=flow_run.id) as run:
        results = evaluate_pairs(plan, config, run.run_id)
        return publish_eval_results(results, run.run_id)
