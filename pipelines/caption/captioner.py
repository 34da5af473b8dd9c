"""The one interface every captioner kind implements, and the registry that loads a checkpoint as one.

A kind registers a `CaptionerFormat`: how to recognise its checkpoint folder
and how to load it. `load_captioner(uri)` picks the first format that
recognises the folder, so `clipline caption` and captioning evaluation never
ask which kind a checkpoint is. A kind is a module of this package that calls
`register` when imported; `load_captioner` imports every module of the package.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)


class Captioner(Protocol):
    """A loaded captioner in eval mode on `device`."""

    device: torch.device
    preprocess: Callable[[Image.Image], torch.Tensor]  # a PIL image -> the model's input tensor (C, H, W)

    def generate(self, images: torch.Tensor, options: GenerateConfig) -> list[str]:
        """One caption per image of the batch `images` (N, C, H, W), cleaned of special tokens."""
        ...


@dataclass(frozen=True)
class CaptionerFormat:
    """A kind's checkpoint format: `matches(folder)` and `load(folder, device)`, each given a local folder (for an
    s3:// checkpoint, a local copy of its files)."""

    matches: Callable[[str], bool]
    load: Callable[[str, torch.device], Captioner]


CAPTIONER_FORMATS: dict[str, CaptionerFormat] = {}  # kind name -> format; kinds add themselves on import


def register(kind: str, fmt: CaptionerFormat) -> None:
    CAPTIONER_FORMATS[kind] = fmt


def captioner_kind(folder: str) -> str:
    """The kind whose format recognises the checkpoint `folder` (a local folder)."""
    for kind, fmt in CAPTIONER_FORMATS.items():
        if fmt.matches(folder):
            return kind
    raise ClipLineError(f"{folder} is not a captioner checkpoint (known kinds: {', '.join(CAPTIONER_FORMATS)})",
                        "pass a checkpoint of `clipline train --kind coca` or `clipline train-captioner`")


def import_kinds() -> None:
    """Import every module of this package, so each captioner kind registers its format."""
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")


def load_captioner(uri: str, device: torch.device | str = "cpu") -> Captioner:
    """The captioner of the checkpoint `uri` (a folder or s3:// prefix), of whichever kind recognises it, on
    `device` in eval mode."""
    with _local_folder(uri) as folder:
        kind = _kind_of(folder)
        log.info("%s is a %s captioner", uri, kind)
        return CAPTIONER_FORMATS[kind].load(folder, torch.device(device))


def resolve_checkpoint(uri: str) -> str:
    """A run folder means its latest checkpoint; any other location is taken as a checkpoint."""
    from clipline.pipelines.train.checkpoint import latest_checkpoint  # torch-free callers need not import it

    return latest_checkpoint(uri) if storage.is_dir(storage.join(uri, "checkpoints")) else uri


def checkpoint_kind(uri: str) -> str:
    """The captioner kind of the checkpoint `uri`, or a ClipLineError when no kind recognises it."""
    with _local_folder(uri) as folder:
        return _kind_of(folder)


def _kind_of(folder: str) -> str:
    import_kinds()
    return captioner_kind(folder)


@contextlib.contextmanager
def _local_folder(uri: str) -> Iterator[str]:
    """`uri` itself when local, else a temporary copy of the files directly under it (removed after)."""
    if not storage.is_dir(uri):
        raise ClipLineError(f"checkpoint {uri} is not a folder", "give a RUN/checkpoints/step-N folder")
    if storage.is_local(uri):
        yield storage.split_protocol(uri)[1]
        return
    with tempfile.TemporaryDirectory(prefix="clipline-captioner-") as folder:
        for file_uri in storage.glob(storage.join(uri, "*")):
            if not storage.is_dir(file_uri):
                (Path(folder) / file_uri.rsplit("/", 1)[-1]).write_bytes(storage.read_bytes(file_uri))
        yield folder
