"""Build argparse options from a pydantic config, so each setting is declared once.

Every field becomes `--field-name` with the field's description as its help;
Literal fields get choices, bools get `--x/--no-x`, lists take several values.
Nested configs (IngestConfig.fetch, ...) are flattened: their fields become
options of their own (a nested field whose flag the parent already has shares
that option). A field may ask to be positional
(`json_schema_extra={"positional": "URL_LIST"}`) or for another flag name
(`{"flag": "--out"}`). Only options the user gives reach the config, so the
config's own defaults and default factories apply to the rest.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable

from pydantic import BaseModel


def _nested_model(annotation) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _kwargs_for(annotation) -> dict:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _kwargs_for(non_none[0]) if len(non_none) == 1 else {"type": str}
    if origin is typing.Literal:
        return {"choices": list(args), "type": type(args[0])}
    if origin in (list, tuple):
        return {"nargs": "+", "type": args[0] if args and isinstance(args[0], type) else str}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": annotation if annotation in (int, float, str) else str}


def _help(field) -> str:
    if field.is_required() or field.default_factory or field.default in (None, []):
        return field.description or ""
    return f"{field.description or ''} (default: {field.default})"


def add_config_options(parser: argparse.ArgumentParser, model: type[BaseModel],
                       include: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> None:
    """Add one option per field of `model` (or of the `include` subset), nested configs flattened."""
    wanted = set(include) if include is not None else None
    for name, field in model.model_fields.items():
        if name in exclude or (wanted is not None and name not in wanted):
            continue
        nested = _nested_model(field.annotation)
        if nested:
            group = parser.add_argument_group(f"{name} options", nested.__doc__)
            add_config_options(group, nested, exclude=exclude)
            continue
        extra = field.json_schema_extra or {}
        flag = extra.get("flag", "--" + name.replace("_", "-"))
        if flag in parser._option_string_actions:  # a nested field named like its parent's (EvalConfig.seed, its
            continue  # generate.seed): one option, which config_from_args hands to both
        if "positional" in extra:
            parser.add_argument(name, metavar=extra["positional"], help=_help(field),
                                **_kwargs_for(field.annotation))
        else:
            parser.add_argument(flag, dest=name,
                                default=argparse.SUPPRESS, required=field.is_required(), help=_help(field),
                                **_kwargs_for(field.annotation))


def config_from_args(model: type[BaseModel], args: argparse.Namespace, **extra):
    """Build `model` (and its nested configs) from the options the user gave; pydantic validates."""
    given = {}
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested:
            given[name] = config_from_args(nested, args)
        elif hasattr(args, name):
            given[name] = getattr(args, name)
    return model(**given, **extra)
