"""What a CKPT argument names: a clipline checkpoint, a run folder, a local-dir: folder, or an open_clip model.

Each kind is a registry entry: a test that recognises the spec and a resolver
to a `CheckpointRef`. The first matching kind wins, so a run folder is never
mistaken for a plain open_clip folder. Resolving checks files only; loading
(`features.load_encoder`) builds the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.models.registry import resolve_name
from clipline.pipelines.train import checkpoint as ckpt

LOCAL_DIR = "local-dir:"


@dataclass(frozen=True)
class CheckpointRef:
    """A resolved checkpoint: `uri` is a folder with open_clip's files (folder kinds) or a model name."""

    label: str  # how results name it: the checkpoint folder, or name@pretrained
    kind: str  # how it loads: "folder" (open_clip files in `uri`) or "open_clip" (model `uri` + `pretrained`)
    uri: str
    pretrained: str | None = None


def _is_folder_with(spec: str, name: str) -> bool:
    try:
        return storage.exists(storage.join(spec, name))
    except ClipLineError:
        return False  # not a URI at all (e.g. an open_clip model name with a colon)


def _clipline(spec: str, pretrained: str | None) -> CheckpointRef:
    return CheckpointRef(spec.rstrip("/"), "folder", spec.rstrip("/"))


def _run_folder(spec: str, pretrained: str | None) -> CheckpointRef:
    latest = ckpt.latest_checkpoint(spec)
    return CheckpointRef(latest, "folder", latest)


def _local_dir(spec: str, pretrained: str | None) -> CheckpointRef:
    folder = spec.removeprefix(LOCAL_DIR).rstrip("/")
    config_uri = storage.join(folder, ckpt.CONFIG)
    if not storage.exists(config_uri) or not storage.exists(storage.join(folder, ckpt.WEIGHTS)):
        raise ClipLineError(f"checkpoint {spec}: no {ckpt.CONFIG} and {ckpt.WEIGHTS} in {folder}",
                            "give a folder in open_clip's local-dir format")
    try:
        json.loads(storage.read_text(config_uri))["model_cfg"]
    except (ValueError, KeyError, TypeError) as e:
        raise ClipLineError(f"checkpoint {spec}: {ckpt.CONFIG} is not an open_clip config ({e})",
                            "re-export the checkpoint") from e
    return CheckpointRef(folder, "folder", folder)


def _open_clip(spec: str, pretrained: str | None) -> CheckpointRef:
    if not pretrained:
        raise ClipLineError(f"checkpoint {spec} is an open_clip model name without weights",
                            "add --pretrained PATH (or an open_clip pretrained tag)")
    return CheckpointRef(f"{spec}@{pretrained}", "open_clip", spec, pretrained)  # the spec: a JSON path re-registers


def _is_captioner(spec: str) -> bool:
    """A folder some captioner kind recognises (the nearest-neighbour baseline, ClipCap) that is no CLIP folder."""
    from clipline.pipelines.eval.captioning import captioner_kind_of

    return captioner_kind_of(spec) is not None


def _captioner(spec: str, pretrained: str | None) -> CheckpointRef:
    return CheckpointRef(spec.rstrip("/"), "captioner", spec.rstrip("/"))


def _is_model_name(spec: str) -> bool:
    try:
        resolve_name(spec)
        return True
    except ClipLineError:
        return False


# kind -> (does the spec name one?, resolve it); tried in this order.
KINDS: dict[str, tuple[Callable[[str], bool], Callable[[str, str | None], CheckpointRef]]] = {
    "local-dir": (lambda s: s.startswith(LOCAL_DIR), _local_dir),
    "clipline": (lambda s: _is_folder_with(s, ckpt.COMMITTED), _clipline),
    "run": (lambda s: _is_folder_with(s, "checkpoints") and ckpt.latest_checkpoint(s) is not None, _run_folder),
    "open_clip_folder": (lambda s: _is_folder_with(s, ckpt.CONFIG), lambda s, p: _local_dir(LOCAL_DIR + s, p)),
    "captioner": (_is_captioner, _captioner),
    "open_clip": (_is_model_name, _open_clip),
}


def resolve_checkpoint(spec: str, pretrained: str | None = None) -> CheckpointRef:
    """The checkpoint a CKPT argument names, or a ClipLineError saying what was looked for."""
    for matches, resolve in KINDS.values():
        if matches(spec):
            return resolve(spec, pretrained)
    raise ClipLineError(f"checkpoint {spec} not found: not a clipline checkpoint or run folder, not a local-dir "
                        "folder, not an open_clip model name",
                        "give RUN/checkpoints/step-N, a run folder, local-dir:DIR, or NAME --pretrained PATH")
