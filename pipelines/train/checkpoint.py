"""Checkpoints in open_clip's local-dir format plus a training-state sidecar.

`RUN/checkpoints/step-00000100/` holds `open_clip_config.json` and
`open_clip_model.safetensors` (so `open_clip.create_model_and_transforms(
"local-dir:...")` loads it unchanged) and `train_state.pt` (optimizer, step,
samples seen, run id, config, and per worker rank its RNG states and data
position), then `_COMMITTED`, written last: a
checkpoint without it is ignored. Each file is written atomically, locally
or on S3. `train_state.pt` holds only tensors and plain values, so it loads
with `weights_only=True`.
"""

from __future__ import annotations

import io
import json
import logging
import random
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.models.tokens import is_tokenizer_file

log = logging.getLogger(__name__)

COMMITTED = "_COMMITTED"
WEIGHTS = "open_clip_model.safetensors"
CONFIG = "open_clip_config.json"
STATE = "train_state.pt"


def checkpoint_uri(run_uri: str, step: int) -> str:
    return storage.join(run_uri, "checkpoints", f"step-{step:08d}")


def committed_checkpoints(run_uri: str) -> list[str]:
    """URIs of the run's complete checkpoints, oldest first."""
    markers = storage.glob(storage.join(run_uri, "checkpoints", "step-*", COMMITTED))
    return sorted(m.rsplit("/", 1)[0] for m in markers)


def latest_checkpoint(run_uri: str) -> str | None:
    found = committed_checkpoints(run_uri)
    return found[-1] if found else None


def rng_state(device: torch.device | None = None) -> dict:
    """This process's RNG states: torch (and its CUDA device's, when training on one), Python and NumPy."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": pos}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state as safetensors takes it: on the CPU, contiguous, tied weights (a GPT-2's input and
    output embeddings) as copies of their own, since safetensors refuses tensors that share memory."""
    tensors, seen = {}, set()
    for key, value in unwrap(module).state_dict().items():
        tensor = value.detach().cpu().contiguous()
        if tensor.numel() and tensor.data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        tensors[key] = tensor
    return tensors


def save_checkpoint(run_uri: str, step: int, model: torch.nn.Module | dict[str, torch.nn.Module],
                    open_clip_config: dict, state: dict, files: dict[str, bytes] | None = None) -> str:
    """Write one checkpoint (weights, open_clip config, training state, other `files`), then its commit marker.

    `model` is the open_clip model, or {file name: module} when more modules go beside it (a video model's
    temporal encoder): the open_clip model under WEIGHTS, each other one in a safetensors file of its own.
    """
    uri = checkpoint_uri(run_uri, step)
    for name, module in (model if isinstance(model, dict) else {WEIGHTS: model}).items():
        storage.write_bytes(storage.join(uri, name), save_safetensors(_tensors(module)))
    storage.write_text(storage.join(uri, CONFIG), json.dumps(open_clip_config, indent=1))
    for name, data in (files or {}).items():
        storage.write_bytes(storage.join(uri, name), data)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    storage.write_bytes(storage.join(uri, STATE), buffer.getvalue())
    storage.write_text(storage.join(uri, COMMITTED), str(step))
    return uri


@dataclass
class LoadedCheckpoint:
    uri: str
    files: dict[str, dict[str, torch.Tensor]]  # weights file name -> tensors
    state: dict

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        """The open_clip model's weights."""
        return self.files[WEIGHTS]


def load_checkpoint(uri: str, files: Iterable[str] = (WEIGHTS,)) -> LoadedCheckpoint:
    """The weights `files` (open_clip's by default) and the training state of a committed checkpoint."""
    if not storage.exists(storage.join(uri, COMMITTED)):
        raise ClipLineError(f"{uri} is not a complete clipline checkpoint (no {COMMITTED})",
                            "give a checkpoint folder from RUN/checkpoints/, or 'latest'")
    weights = {name: load_safetensors(storage.read_bytes(storage.join(uri, name))) for name in files}
    state = torch.load(io.BytesIO(storage.read_bytes(storage.join(uri, STATE))), weights_only=True)
    return LoadedCheckpoint(uri, weights, state)


def local_copy(uri: str) -> str:
    """A local folder with the checkpoint's open_clip files (open_clip's local-dir: needs a path): weights, config
    and the tokenizer files a model with its own tokenizer carries."""
    if storage.is_local(uri):
        return storage.split_protocol(uri)[1]
    folder = Path(tempfile.mkdtemp(prefix="clipline-ckpt-"))
    for name in {WEIGHTS, CONFIG} | {n for n in storage.list_names(uri) if is_tokenizer_file(n)}:
        (folder / name).write_bytes(storage.read_bytes(storage.join(uri, name)))
    return str(folder)


def remove_local_copy(uri: str, folder: str) -> None:
    if not storage.is_local(uri):
        shutil.rmtree(folder, ignore_errors=True)
