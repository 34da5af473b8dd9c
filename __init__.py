"""clipline: URL lists to trained, evaluated CLIP-style models, every number queryable in SQL.

The repository's root folder is the `clipline` package. setup.py installs its
layer folders under this one name (`clipline.flows`, `clipline.tasks`,
`clipline.pipelines`, and the store's SQL as `clipline/sql`), so nothing else
lands at the top level of a user's environment, where a Prefect project's own
`flows` or `tasks` package would clash with ours.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clipline")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
