"""Record a run's life in the store: one `run_events` row when it starts and one when it ends."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.writer import ResultsWriter, now
from clipline.pipelines.version import code_version


@dataclass(frozen=True)
class Run:
    run_id: str
    flow: str
    config_json: str
    started_at: datetime


def _event(run: Run, status: str, ended_at: datetime | None = None, error: str | None = None) -> dict:
    return {
        "run_id": run.run_id, "flow": run.flow, "config": run.config_json, "status": status,
        "started_at": run.started_at, "ended_at": ended_at, "code_version": code_version(),
        "host": socket.gethostname(), "error": error, "event_time": now(),
    }


@contextlib.contextmanager
def recorded_run(flow: str, config: BaseModel, store: StoreConfig,
                 run_id: str | None = None) -> Iterator[Run]:
    """Write `running` now, then `completed` or `failed` (with the error) when the block ends."""
    run = Run(run_id or uuid.uuid4().hex, flow, config.model_dump_json(), now())
    writer = ResultsWriter(store)
    writer.append("run_events", [_event(run, "running")])
    writer.flush()
    try:
        yield run
    except BaseException as e:
        message = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        writer.append("run_events", [_event(run, "failed", now(), message)])
        writer.flush()
        raise
    writer.append("run_events", [_event(run, "completed", now())])
    writer.flush()
