"""The captioners learn to caption: on held-out digits the greedy captions of a ClipCap (on a frozen digits CLIP) and
of a CoCa (trained from scratch) name the right digit, and their CIDEr beats the nearest-neighbour baseline (the
caption of the nearest training image in the digits CLIP's space)."""

from __future__ import annotations

import pytest

from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.caption.nearest import build_caption_bank
from clipline.pipelines.caption.runner import caption_shards, plan_captioning
from clipline.pipelines.config import CaptionConfig, CaptionerTrainConfig, GenerateConfig, StoreConfig
from clipline.pipelines.eval.captioning_metrics import caption_scores
from clipline.pipelines.train.trainer import fit, plan_training
from support.captioning import (
    ACCURACY_STEPS,
    NUM_HELD_OUT,
    TRAIN_SHARDS,
    coca_config,
    fit_beside_loaders,
    save_local_gpt2,
    small_vocab_coca,
)
from support.shards import CAPTION_TEMPLATES, digit_images

CLIPCAP_STEPS = 300
CAPTIONERS = ("clipcap", "coca")


@pytest.fixture(scope="module")
def held_out_captions(digits_clip, caption_digits, tmp_path_factory):
    """Greedy captions of the 500 held-out digits by a ClipCap on the frozen digits CLIP, by a CoCa and by the
    baseline."""
    root = tmp_path_factory.mktemp("caption-quality")
    store = StoreConfig(results_uri=str(root / "results"))
    texts = [t.format(n) for n in DIGIT_NAMES for t in CAPTION_TEMPLATES]
    # Tokenizers of the captions' words (a user's `--lm FOLDER`, a model config's hf_tokenizer_name): a 49,408-token
    # output layer (CLIP's BPE) would make each step about 10 times slower.
    save_local_gpt2(root / "gpt2", texts, n_layer=2, n_embd=32, n_head=2)
    train = str(caption_digits / "train" / TRAIN_SHARDS)
    config = CaptionerTrainConfig(data=train, output_uri=str(root / "clipcap"), clip=digits_clip, lm=str(root / "gpt2"),
                                  mapping="mlp", prefix_length=4, mapping_layers=2, steps=CLIPCAP_STEPS, batch_size=64,
                                  lr=3e-3, warmup=10, weight_decay=0.0, workers=0, log_every=100,
                                  checkpoint_every=CLIPCAP_STEPS, data_workers=0, store=store)
    clipcap = fit(config, plan_training(config), "clipcap-quality")["checkpoint"]
    coca = coca_config(caption_digits, root / "coca", model=small_vocab_coca(root, texts), steps=ACCURACY_STEPS,
                       batch_size=128, log_every=100, data_workers=2, store=store)
    coca = fit_beside_loaders(coca, "coca-quality")["checkpoint"]
    build_caption_bank(digits_clip, train, str(root / "nearest"))
    captions = {}
    for name, checkpoint in (("clipcap", clipcap), ("coca", coca), ("nearest", str(root / "nearest"))):
        run = CaptionConfig(checkpoint=checkpoint, data=str(caption_digits / "held-out" / "00000.tar"),
                            batch_size=100, generate=GenerateConfig(method="greedy"), store=store)
        captions[name] = caption_shards(plan_captioning(run), run, name)
    return captions


def _right_digit(captioned) -> float:
    _, labels = digit_images()
    assert len(captioned) == NUM_HELD_OUT
    return sum(DIGIT_NAMES[labels[4000 + i]] in c.caption.split() for i, c in enumerate(captioned)) / NUM_HELD_OUT


@pytest.mark.parametrize("captioner", CAPTIONERS)
def test_captions_name_the_right_digit_for_80_percent_of_held_out_images(held_out_captions, captioner):
    accuracy = _right_digit(held_out_captions[captioner])
    assert accuracy >= 0.8, (accuracy, [c.caption for c in held_out_captions[captioner][:10]])


@pytest.mark.parametrize("captioner", CAPTIONERS)
def test_cider_is_above_the_nearest_neighbour_baseline(held_out_captions, captioner):
    cider = {name: caption_scores([c.caption for c in done], [c.references for c in done],
                                  use_java=False).metrics["cider"] for name, done in held_out_captions.items()}
    assert cider[captioner] > cider["nearest"], cider
