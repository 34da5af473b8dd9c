"""A model's tokenizer beyond open_clip's call: its special token ids, decoding, and the files a checkpoint carries.

open_clip tokenizes with CLIP's BPE (SimpleTokenizer, 49,408 tokens) unless the model config's `text_cfg` names
`hf_tokenizer_name`; then it wraps transformers' AutoTokenizer (HFTokenizer). clipline accepts only a local
tokenizer folder there (nothing is downloaded), checks it before any work, and writes its files into every
checkpoint, where open_clip's `local-dir:` load looks for them. A small vocabulary is what makes a tiny CoCa
quick to train: its decoder's output layer has one row per token.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

from clipline.pipelines.errors import ClipLineError

PAD_ID = 0  # open_clip's CoCa masks padding (text tower, CoCaLoss's ignore_index) by this id
TOKENIZER_FILE_SUFFIXES = (".json", ".txt", ".model")  # what save_pretrained writes (vocab, merges, configs)


@dataclass(frozen=True)
class SpecialIds:
    sot: int
    eot: int
    pad: int


class _Simple:
    """CLIP's BPE: start and end of text are its last two ids, padding is 0; nothing to carry (open_clip ships it)."""

    def ids(self, tokenizer: SimpleTokenizer) -> SpecialIds:
        return SpecialIds(tokenizer.sot_token_id, tokenizer.eot_token_id, PAD_ID)

    def decode(self, tokenizer: SimpleTokenizer, ids: list[int]) -> str:
        return tokenizer.decode(ids)

    def files(self, tokenizer: SimpleTokenizer) -> dict[str, bytes]:
        return {}


class _HuggingFace:
    """A transformers tokenizer: its bos/eos/pad tokens, and the files save_pretrained writes."""

    def ids(self, tokenizer: HFTokenizer) -> SpecialIds:
        hf = tokenizer.tokenizer
        return SpecialIds(hf.bos_token_id, hf.eos_token_id, hf.pad_token_id)

    def decode(self, tokenizer: HFTokenizer, ids: list[int]) -> str:
        return tokenizer.tokenizer.decode(ids, skip_special_tokens=True)

    def files(self, tokenizer: HFTokenizer) -> dict[str, bytes]:
        return saved_files(tokenizer)


def saved_files(tokenizer) -> dict[str, bytes]:
    """The files (name -> bytes) a transformers tokenizer's save_pretrained writes, for a checkpoint to carry."""
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


TOKENIZER_KINDS = {SimpleTokenizer: _Simple(), HFTokenizer: _HuggingFace()}


def _kind(tokenizer) -> _Simple | _HuggingFace:
    try:
        return TOKENIZER_KINDS[type(tokenizer)]
    except KeyError:
        raise ClipLineError(f"clipline cannot caption with a {type(tokenizer).__name__}",
                            "use CLIP's tokenizer or a local transformers tokenizer folder "
                            "(text_cfg.hf_tokenizer_name)") from None


def special_ids(tokenizer) -> SpecialIds:
    return _kind(tokenizer).ids(tokenizer)


def decode(tokenizer, ids: list[int]) -> str:
    return _kind(tokenizer).decode(tokenizer, ids).strip()


def tokenizer_files(tokenizer) -> dict[str, bytes]:
    """The files a checkpoint needs so that open_clip's local-dir load rebuilds this tokenizer (none for CLIP's)."""
    return _kind(tokenizer).files(tokenizer)


def is_tokenizer_file(name: str) -> bool:
    return name.endswith(TOKENIZER_FILE_SUFFIXES)


def check_hf_tokenizer(model: str, model_cfg: dict) -> None:
    """A model config naming `text_cfg.hf_tokenizer_name` must name a local tokenizer folder whose ids fit the
    model's vocabularies and that frames every text as start ... end, padded with id 0 (CoCa's pad)."""
    text_cfg = model_cfg.get("text_cfg", {})
    folder = text_cfg.get("hf_tokenizer_name")
    if not folder or text_cfg.get("hf_model_name"):
        return
    fix = ("give text_cfg.hf_tokenizer_name as a local folder that transformers' save_pretrained wrote, with "
           "bos, eos and pad (id 0) tokens and a post-processor that adds bos and eos")
    if not (Path(folder) / "tokenizer_config.json").is_file():
        raise ClipLineError(f"model {model}: hf_tokenizer_name {folder!r} is not a local tokenizer folder "
                            "(no tokenizer_config.json); clipline downloads nothing", fix)
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ClipLineError(f"model {model}: the tokenizer in {folder} does not load ({e})", fix) from e
    if None in (hf.bos_token_id, hf.eos_token_id) or hf.pad_token_id != PAD_ID:
        raise ClipLineError(f"model {model}: the tokenizer in {folder} has bos {hf.bos_token_id}, eos "
                            f"{hf.eos_token_id}, pad {hf.pad_token_id}; it needs bos and eos, and pad {PAD_ID}", fix)
    framed = hf("a").input_ids
    if framed[0] != hf.bos_token_id or framed[-1] != hf.eos_token_id:
        raise ClipLineError(f"model {model}: the tokenizer in {folder} does not add bos and eos around a text "
                            f"('a' -> {framed})", fix)
    for part in ("text_cfg", "multimodal_cfg"):
        size = model_cfg.get(part, {}).get("vocab_size")
        if size is not None and size < len(hf):
            raise ClipLineError(f"model {model}: {part}.vocab_size is {size}, but the tokenizer in {folder} has "
                                f"{len(hf)} tokens", f"set {part}.vocab_size to {len(hf)}")
