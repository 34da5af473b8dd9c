"""Prefect flows (one per file) and the `clipline` CLI."""

import os

# Prefect's ephemeral server needs more than its default 20 s to start on 2 cores.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
