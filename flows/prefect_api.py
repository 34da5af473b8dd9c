"""Start Prefect's ephemeral API server while the CLI imports torch and Ray, instead of after.

With no PREFECT_API_URL, the first flow call starts a temporary Prefect server (a uvicorn subprocess) and
polls it until it answers: 5 to 15 s on 2 cores, most of it waiting for the subprocess. `start_in_background`
begins that on a thread as soon as a verb's config is valid, so the server boots on another core while this
process imports its stack; `ready` waits for it just before the flow is called (Prefect's own start then finds
the server running). With PREFECT_API_URL set, both do nothing.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_starter: threading.Thread | None = None
_failure: list[BaseException] = []


def _start() -> None:
    try:
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().start()  # the instance Prefect's get_client() uses when no API URL is set
    except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread by ready()
        _failure.append(e)


def start_in_background() -> None:
    global _starter
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if _starter or PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    _starter = threading.Thread(target=_start, name="prefect-ephemeral-api", daemon=True)
    _starter.start()


def ready() -> None:
    """Wait until the server started by start_in_background answers (re-raising its error, if any)."""
    if _starter:
        _starter.join()
    if _failure:
        raise _failure[0]
