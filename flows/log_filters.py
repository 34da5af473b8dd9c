"""Keep a user's mistake to one log line: a ClipLineError is bad input, not a crash.

Prefect logs a failed task and its flow with full tracebacks (the same error
twice, 70 lines before the CLI's `error:` line). Without `-v`, the task run's
records of a ClipLineError are dropped and the flow run's is kept as one line
without its traceback (its final state, which repeats it, is dropped); any other exception keeps its full traceback.
"""

from __future__ import annotations

import logging

from clipline.pipelines.errors import ClipLineError

TASK_LOGGER = "prefect.task_runs"
FLOW_LOGGER = "prefect.flow_runs"


def _is_user_error(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return isinstance(exc, ClipLineError) or (exc is None and "ClipLineError" in record.getMessage())


class TaskUserErrors(logging.Filter):
    """Drop a task run's error records about a ClipLineError: its flow reports it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or not _is_user_error(record)


class FlowUserErrors(logging.Filter):
    """Log a flow run's ClipLineError as one line, without a traceback (and not again in its final state)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ClipLineError):
            record.exc_info, record.exc_text = None, None
            return True
        return record.levelno >= logging.ERROR or not _is_user_error(record)


def quiet_user_errors() -> None:
    """Install both filters (the CLI does so unless run with -v)."""
    logging.getLogger(TASK_LOGGER).addFilter(TaskUserErrors())
    logging.getLogger(FLOW_LOGGER).addFilter(FlowUserErrors())
