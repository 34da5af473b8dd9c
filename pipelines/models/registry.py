"""Resolve a model spec to an open_clip model: a registered name, a clipline config, a JSON path, or a checkpoint.

clipline's own configs are open_clip JSON configs in `pipelines/models/configs/`;
registering that folder with open_clip makes them ordinary model names, so
nothing branches on a name. A spec ending in `.json` is registered on the fly.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch

from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@functools.cache
def register_clipline_configs() -> None:
    open_clip.add_model_config(CONFIG_DIR)


def resolve_name(spec: str) -> str:
    """The open_clip model name for a spec (registering JSON configs as needed)."""
    register_clipline_configs()
    if spec.endswith(".json"):
        path = Path(spec)
        if not path.is_file():
            raise ClipLineError(f"model config {spec} does not exist", "give an open_clip model name or a JSON path")
        open_clip.add_model_config(path)
        return path.stem
    if spec.startswith("local-dir:") or spec in open_clip.list_models():
        return spec
    raise ClipLineError(f"unknown model {spec!r}", "use an open_clip model name, a JSON config, or one of "
                        f"clipline's: {', '.join(clipline_models())}")


def clipline_models() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


@dataclass
class BuiltModel:
    model: torch.nn.Module
    preprocess_train: object
    preprocess_val: object
    tokenizer: object
    model_cfg: dict  # open_clip's model config (for open_clip_config.json)
    preprocess_cfg: dict


def model_config(name: str) -> dict:
    config = open_clip.get_model_config(name)
    if config is None:
        raise ClipLineError(f"no config for model {name!r}", "check the model name")
    return config


def build_model(spec: str, augment: bool = True, weights: str | None = None, **model_kwargs) -> BuiltModel:
    """Create the model and its transforms; `weights` is a local-dir folder to load (init, eval)."""
    name = resolve_name(spec)
    if weights:
        name = f"local-dir:{weights}"
    model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
        name, weights_only=True, output_dict=True, **model_kwargs)
    if not augment:
        # open_clip's training transform always crops at random: its aug_cfg `ratio` is ignored without timm,
        # so a full-scale crop still tried ten random aspect ratios per image. Without augmentation, the
        # images go through the evaluation transform (resize, centre crop), as open_clip's val set does.
        preprocess_train = preprocess_val
    model_cfg = (json.loads((Path(weights) / "open_clip_config.json").read_text())["model_cfg"] if weights
                 else model_config(name))
    if not weights and hasattr(model, "text_decoder"):
        _init_coca_decoder(model.text_decoder)
    preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    return BuiltModel(model, preprocess_train, preprocess_val, open_clip.get_tokenizer(name), model_cfg,
                      preprocess_cfg)


def _init_coca_decoder(decoder: torch.nn.Module) -> None:
    """open_clip 3.3's MultimodalTransformer never calls its init_parameters (which fails: it reads a
    `transformer` attribute it lacks), so a CoCa built from scratch keeps text_projection as torch.empty, whatever
    that memory held (zeros in a fresh process, huge values after other work: a 1e35 first loss was seen). It is
    initialised here as that method means to."""
    torch.nn.init.normal_(decoder.text_projection, std=decoder.width ** -0.5)
