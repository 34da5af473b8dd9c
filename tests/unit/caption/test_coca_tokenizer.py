"""A CoCa (or any CLIP) whose model config names a local transformers tokenizer: checked before training, carried
by every checkpoint, and found again by open_clip's local-dir load, also from object storage."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest

from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.kinds import TRAINING_KINDS
from clipline.pipelines.train.trainer import plan_training
from support.captioning import coca_config, save_word_tokenizer, small_vocab_coca
from support.shards import CAPTION_TEMPLATES

TEXTS = [t.format(n) for n in DIGIT_NAMES for t in CAPTION_TEMPLATES]


def test_a_checkpoint_in_object_storage_carries_the_tokenizer_open_clip_loads(caption_digits, tmp_path, s3_uri):
    config = coca_config(caption_digits, tmp_path / "run", model=small_vocab_coca(tmp_path, TEXTS))
    built = TRAINING_KINDS["coca"].build(config)
    uri = ckpt.save_checkpoint(f"{s3_uri}/run", 1, built.weight_files, built.open_clip_config, {"step": 1},
                               built.files)
    folder = ckpt.local_copy(uri)
    try:
        loaded = open_clip.get_tokenizer(f"local-dir:{folder}")
        model = open_clip.create_model(f"local-dir:{folder}")
    finally:
        ckpt.remove_local_copy(uri, folder)
    ids = loaded(["the digit seven"])[0].tolist()
    words = json.loads((tmp_path / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    # <start> the digit seven <end>, padded to the context length with 0: the word tokenizer's ids, not CLIP's
    assert ids == [1, words["the"], words["digit"], words["seven"], 2, 0, 0, 0]
    assert model.text_decoder.text_projection.shape[1] == len(words)


def _with_text_cfg(tmp_path: Path, base: str, **text_cfg) -> str:
    config = json.loads(Path(base).read_text())
    config["text_cfg"].update(text_cfg)
    path = tmp_path / "bad-coca.json"
    path.write_text(json.dumps(config))
    return str(path)


def _no_pad_tokenizer(folder: Path) -> None:
    save_word_tokenizer(folder, TEXTS)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        settings = json.loads((folder / name).read_text())
        settings.pop("pad_token", None)
        (folder / name).write_text(json.dumps(settings))


@pytest.mark.parametrize(("change", "message"), [
    (lambda tmp, base: _with_text_cfg(tmp, base, hf_tokenizer_name=str(tmp / "nowhere")),
     "is not a local tokenizer folder"),
    (lambda tmp, base: _with_text_cfg(tmp, base, vocab_size=10), "text_cfg.vocab_size is 10, but the tokenizer"),
    (lambda tmp, base: (_no_pad_tokenizer(tmp / "tokenizer"), base)[1], "it needs bos and eos, and pad 0"),
], ids=["missing-folder", "vocabulary-too-small", "no-padding-token"])
def test_a_model_config_with_an_unusable_tokenizer_is_refused_before_training(caption_digits, tmp_path, change,
                                                                               message):
    model = change(tmp_path, small_vocab_coca(tmp_path, TEXTS))
    with pytest.raises(ClipLineError, match=message):
        plan_training(coca_config(caption_digits, tmp_path / "run", model=model))
