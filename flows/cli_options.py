"""Build argparse options from a pydantic config, so each setting is declared once.

Every field becomes `--field-name` with the field's description as its help;
Literal fields get choices, bools get `--x/--no-x`, lists take several values.
Only options the user gives are passed to the config, so the config's own
defaults (and default factories) apply to the rest.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable

from pydantic import BaseModel


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _kwargs_for(annotation) -> dict:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _kwargs_for(non_none[0]) if len(non_none) == 1 else {"type": str}
    if origin is typing.Literal:
        return {"choices": list(args), "type": type(args[0])}
    if origin in (list, tuple):
        return {"nargs": "+", "type": args[0] if args and isinstance(args[0], type) else str}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if annotation in (int, float, str):
        return {"type": annotation}
    return {"type": str}


def add_config_options(parser: argparse.ArgumentParser, model: type[BaseModel],
                       include: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> None:
    """Add one option per field of `model` (or of the `include` subset)."""
    wanted = set(include) if include is not None else None
    for name, field in model.model_fields.items():
        if name in exclude or (wanted is not None and name not in wanted):
            continue
        default = None if field.default_factory else field.default
        shown = "" if default in (None, ...) else f" (default: {default})"
        parser.add_argument(option_name(name), dest=name, default=argparse.SUPPRESS,
                            help=(field.description or "") + shown, **_kwargs_for(field.annotation))


def config_from_args(model: type[BaseModel], args: argparse.Namespace, **extra) -> BaseModel:
    """Build `model` from the options the user gave (plus `extra`); pydantic validates."""
    given = {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}
    return model(**given, **extra)
