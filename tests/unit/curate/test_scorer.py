"""A scorer whose tokenizer or image size does not fit its towers is refused before any shard is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipline.pipelines.curate.run import curate
from clipline.pipelines.errors import ClipLineError
from support.curation import MICRO, save_untrained
from support.shards import write_digit_shards


def test_a_tokenizer_with_ids_beyond_the_text_towers_vocabulary_is_refused(tmp_path, config_for):
    small_vocab = tmp_path / "small-vocab.json"
    micro = json.loads(MICRO.read_text())
    micro["text_cfg"]["vocab_size"] = 1000  # open_clip's tokenizer yields ids up to 49407
    small_vocab.write_text(json.dumps(micro))
    write_digit_shards(tmp_path / "data", 1, 4)
    checkpoint = save_untrained(tmp_path / "run", small_vocab)
    with pytest.raises(ClipLineError, match="token id 49407, its text tower has only 1000 token embeddings"):
        curate(config_for(str(tmp_path / "data"), scorer=checkpoint, min_clip_score=0.1))
    assert not (tmp_path / "scores").exists()


@pytest.mark.parametrize(("section", "field", "value", "message"), [
    ("vision_cfg", "image_size", 56, "weights have 17 image positions, its config's image size 56 with 7 px patches "
     "makes 65"),
    ("text_cfg", "context_length", 16, "weights have 8 token positions, its tokenizer's config says context_length 16"),
])
def test_weights_for_another_image_size_or_context_are_refused(tmp_path, config_for, micro_checkpoint, section,
                                                               field, value, message):
    other = json.loads(MICRO.read_text())
    other[section][field] = value
    (tmp_path / "micro-other.json").write_text(json.dumps(other))
    weights = str(Path(micro_checkpoint) / "open_clip_model.safetensors")
    write_digit_shards(tmp_path / "data", 1, 4)
    with pytest.raises(ClipLineError, match=message):
        curate(config_for(str(tmp_path / "data"), scorer=str(tmp_path / "micro-other.json"), pretrained=weights,
                          min_clip_score=0.1))
    assert not (tmp_path / "scores").exists()
