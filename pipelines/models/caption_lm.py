"""The captioner's causal LM: transformers' GPT-2, from a local folder or a small config trained from scratch.

`--lm` is one of: a local GPT-2 folder (what `save_pretrained` writes: config.json,
weights, tokenizer files), used with its own tokenizer; a preset name (`tiny`);
or a JSON file of GPT-2 config values. A from-scratch LM uses open_clip's BPE
tokenizer (its vocabulary ships inside the open_clip package; no GPT-2
tokenizer is available offline), so its vocabulary is open_clip's 49,408 tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from open_clip.tokenizer import SimpleTokenizer

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.models.tokens import saved_files

LM_PRESETS: dict[str, dict] = {
    "tiny": {"n_layer": 2, "n_embd": 128, "n_head": 4},  # ~6.7M parameters, 6.3M of them the token embedding
}
FROM_SCRATCH_KEYS = {"n_layer", "n_embd", "n_head", "n_inner", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                     "activation_function", "layer_norm_epsilon"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
IGNORE = -100  # label of padding: no loss (torch's cross_entropy ignore_index)
LM_FIX = ("give --lm a local GPT-2 folder (config.json, model.safetensors and tokenizer files, as save_pretrained "
          "writes them), 'tiny', or a JSON file of GPT-2 config values such as "
          '{"n_layer": 2, "n_embd": 128, "n_head": 4}')


def check_lm(spec: str) -> str:
    """`spec` if it names an LM (a preset, an absolute folder or JSON path); else a ClipLineError saying why."""
    if spec in LM_PRESETS:
        return spec
    path = Path(spec).expanduser().resolve()
    if path.is_dir():
        _check_folder(path)
    elif path.is_file():
        _from_scratch_values(path)
    else:
        raise ClipLineError(f"--lm {spec}: no such LM preset, folder or file (presets: {', '.join(LM_PRESETS)})",
                            LM_FIX)
    return str(path)


def _check_folder(path: Path) -> None:
    config = path / "config.json"
    if not config.is_file():
        raise ClipLineError(f"--lm {path} is not a model folder: it has no config.json", LM_FIX)
    model_type = _json(config).get("model_type")
    if model_type != "gpt2":
        raise ClipLineError(f"--lm {path}: config.json says model_type {model_type!r}; the captioner needs a GPT-2 "
                            "(model_type 'gpt2')", LM_FIX)
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ClipLineError(f"--lm {path} has no weights ({' or '.join(WEIGHT_FILES)})", LM_FIX)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ClipLineError(f"--lm {path} has no tokenizer ({' or '.join(TOKENIZER_FILES)})", LM_FIX)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClipLineError(f"--lm {path} is neither a model folder nor a JSON GPT-2 config ({e})", LM_FIX) from e
    if not isinstance(value, dict):
        raise ClipLineError(f"--lm {path}: a JSON config must be an object of GPT-2 config values", LM_FIX)
    return value


def _from_scratch_values(path: Path) -> dict:
    values = _json(path)
    unknown = set(values) - FROM_SCRATCH_KEYS
    if unknown:
        raise ClipLineError(f"--lm {path}: unknown GPT-2 config keys {sorted(unknown)}",
                            f"use only {sorted(FROM_SCRATCH_KEYS)}")
    return values


class CaptionTokenizer(Protocol):
    kind: str
    vocab_size: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class OpenClipTokens:
    """open_clip's BPE tokenizer: a caption is its tokens then end-of-text (no start token: the prefix starts)."""

    kind = "open_clip"

    def __init__(self) -> None:
        self._bpe = SimpleTokenizer()
        self.vocab_size = len(self._bpe.encoder)
        self.eos_id = self._bpe.eot_token_id

    def encode(self, text: str) -> list[int]:
        return self._bpe.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self._bpe.decode(ids).strip()


class PretrainedTokens:
    """The tokenizer saved beside a pretrained GPT-2 (transformers' AutoTokenizer, from local files only)."""

    kind = "pretrained"

    def __init__(self, folder: str) -> None:
        from transformers import AutoTokenizer

        self._hf = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.vocab_size = len(self._hf)
        self.eos_id = self._hf.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self._hf.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self._hf.decode(ids, skip_special_tokens=True).strip()

    def files(self) -> dict[str, bytes]:
        """The tokenizer's files (name -> bytes), for a checkpoint to carry."""
        return saved_files(self._hf)


@dataclass(frozen=True)
class CaptionTokens:
    """Captions -> a (batch, length) tensor of token ids ending in end-of-text, padded with IGNORE."""

    tokenizer: CaptionTokenizer
    max_tokens: int

    def __call__(self, texts: list[str]) -> torch.Tensor:
        rows = [(self.tokenizer.encode(t)[: self.max_tokens - 1] + [self.tokenizer.eos_id]) for t in texts]
        tokens = torch.full((len(rows), max(map(len, rows))), IGNORE, dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row)
        return tokens


@dataclass
class BuiltLM:
    lm: torch.nn.Module  # transformers' GPT2LMHeadModel
    tokenizer: CaptionTokenizer


def build_lm(spec: str, min_positions: int) -> BuiltLM:
    """The LM of `spec` (see check_lm) with its tokenizer; a from-scratch one gets `min_positions` positions."""
    from transformers import GPT2LMHeadModel

    if Path(spec).is_dir():
        lm = GPT2LMHeadModel.from_pretrained(spec, local_files_only=True)
        built = BuiltLM(lm, PretrainedTokens(spec))
    else:
        values = LM_PRESETS.get(spec) or _from_scratch_values(Path(spec))
        tokenizer = OpenClipTokens()
        built = BuiltLM(GPT2LMHeadModel(scratch_config(values, tokenizer, min_positions)), tokenizer)
    if built.lm.config.n_positions < min_positions:
        raise ClipLineError(f"--lm {spec} takes {built.lm.config.n_positions} positions; prefix and caption need "
                            f"{min_positions}", "lower --prefix-length or --max-caption-tokens")
    return built


def scratch_config(values: dict, tokenizer: CaptionTokenizer, positions: int):
    """A GPT-2 config of `values` over `tokenizer`'s vocabulary, end-of-text as its BOS/EOS/pad token."""
    from transformers import GPT2Config

    eos = tokenizer.eos_id
    return GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=positions, bos_token_id=eos, eos_token_id=eos,
                      pad_token_id=eos, **values)
