"""CoCa training (`clipline train --kind coca`) and captioning, on digits with templated captions."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.loss import ClipLoss

from clipline.pipelines.caption.captioner import load_captioner
from clipline.pipelines.caption.runner import caption_shards, plan_captioning
from clipline.pipelines.config import CaptionConfig, GenerateConfig, StoreConfig
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.train.checkpoint import save_checkpoint
from clipline.pipelines.train.step import build_loss
from clipline.pipelines.train.trainer import plan_training
from support.captioning import NUM_HELD_OUT, coca_config
from support.shards import digit_images, templated_caption


def caption_config(checkpoint: str, data: str, tmp_path: Path, **options) -> CaptionConfig:
    return CaptionConfig(checkpoint=checkpoint, data=data, batch_size=100, generate=GenerateConfig(**options),
                         store=StoreConfig(results_uri=str(tmp_path / "results")))


def test_coca_loss_weighs_open_clips_contrastive_loss_and_a_next_token_cross_entropy(caption_digits, tmp_path):
    config = coca_config(caption_digits, tmp_path / "run", contrastive_weight=0.5, caption_weight=3.0)
    built = build_model(config.model)
    torch.manual_seed(0)
    out = built.model(torch.randn(4, 3, 28, 28), built.tokenizer(["the digit one", "a drawing of a two",
                                                                  "a handwritten three", "the digit four"]))
    losses = build_loss(config, rank=0, world_size=1)(**out, output_dict=True)
    next_token = torch.nn.functional.cross_entropy(out["logits"].reshape(-1, out["logits"].shape[-1]),
                                                   out["labels"].reshape(-1), ignore_index=0)
    contrastive = ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"])
    assert losses["contrastive_loss"].item() == pytest.approx(0.5 * contrastive.item(), rel=1e-5)
    assert losses["caption_loss"].item() == pytest.approx(3.0 * next_token.item(), rel=1e-5)


def test_references_are_the_samples_own_captions(coca_checkpoint, caption_digits, tmp_path):
    config = caption_config(coca_checkpoint, str(caption_digits / "held-out" / "00000.tar"), tmp_path,
                            method="greedy")
    captioned = caption_shards(plan_captioning(config), config, "greedy-run")
    _, labels = digit_images()
    assert len(captioned) == NUM_HELD_OUT
    assert [c.references for c in captioned[:3]] == [(templated_caption(int(labels[4000 + i]), 4000 + i),)
                                                     for i in range(3)]


def test_the_checkpoint_is_an_open_clip_coca_that_generates(coca_checkpoint):
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{coca_checkpoint}")
    assert isinstance(model, open_clip.CoCa)
    images, _ = digit_images()
    from PIL import Image

    batch = torch.stack([preprocess(Image.fromarray(images[4000 + i], "L")) for i in range(3)])
    tokens = model.eval().generate(batch, seq_len=8, max_seq_len=8, min_seq_len=2)
    assert tokens.shape[0] == 3 and (tokens[:, 0] == 49406).all()


def _captions(captioner, options: GenerateConfig, n: int = 64) -> list[str]:
    images, _ = digit_images()
    from PIL import Image

    batch = torch.stack([captioner.preprocess(Image.fromarray(images[4000 + i], "L")) for i in range(n)])
    return captioner.generate(batch, options)


def test_nucleus_sampling_repeats_for_a_seed_and_varies_across_seeds(coca_checkpoint):
    captioner = load_captioner(coca_checkpoint)
    # A flat distribution over CLIP's 49,408 tokens: two seeds must disagree somewhere in 16 x 8 draws. (64 images
    # of 30 tokens took 34 s on 2 loaded cores: generation reruns the whole prefix at every token.)
    hot = dict(method="nucleus", top_p=1.0, temperature=3.0, max_length=8)
    first = _captions(captioner, GenerateConfig(seed=1, **hot), n=16)
    assert _captions(captioner, GenerateConfig(seed=1, **hot), n=16) == first
    assert _captions(captioner, GenerateConfig(seed=2, **hot), n=16) != first


def test_beam_search_captions_every_image(coca_checkpoint):
    captions = _captions(load_captioner(coca_checkpoint), GenerateConfig(method="beam", num_beams=3), n=8)
    assert len(captions) == 8 and all(c and "<" not in c for c in captions)


def test_a_clip_checkpoint_is_refused_before_any_model_loads(caption_digits, tmp_path):
    built = build_model("clipline-tiny", augment=False)
    clip = save_checkpoint(str(tmp_path / "clip"), 1, built.model,
                           {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}, {"step": 1})
    config = caption_config(clip, str(caption_digits / "held-out" / "00000.tar"), tmp_path)
    with pytest.raises(ClipLineError, match="is not a captioner checkpoint"):
        plan_captioning(config)


def test_coca_training_of_a_clip_model_is_refused_before_training(caption_digits, tmp_path):
    with pytest.raises(ClipLineError, match="is not a CoCa model"):
        plan_training(coca_config(caption_digits, tmp_path / "run", model="clipline-tiny"))


def test_predictions_written_before_the_caption_columns_read_them_as_null(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clipline.pipelines.store.query import run_query
    from clipline.pipelines.store.writer import ResultsWriter

    old = pa.table({"run_id": ["r0"], "checkpoint": ["c"], "dataset": ["d"], "task": ["zeroshot"],
                    "strategy": ["single"], "key": ["k0"], "predicted_label": ["seven"]})
    (tmp_path / "results" / "predictions").mkdir(parents=True)
    pq.write_table(old, tmp_path / "results" / "predictions" / "old.parquet")
    with ResultsWriter(StoreConfig(results_uri=str(tmp_path / "results"))) as writer:
        writer.append("predictions", [{"run_id": "r1", "checkpoint": "c", "dataset": "d", "task": "captioning",
                                       "key": "k1", "caption": "the digit one", "references": ["a handwritten one"]}])
    rows = run_query(str(tmp_path / "results"),
                     'SELECT key, caption, "references" FROM predictions ORDER BY key').rows
    assert rows == [("k0", None, None), ("k1", "the digit one", ["a handwritten one"])]
    assert json.dumps(rows[1][2])


def test_the_train_flow_keeps_a_coca_config_through_prefects_parameter_validation(caption_digits, tmp_path):
    from clipline.flows.train import train_clip
    from clipline.pipelines.config import TrainConfig

    coca = coca_config(caption_digits, tmp_path / "run", caption_weight=5.0)
    for given in (coca, coca.model_dump(mode="json")):  # an in-process call, a deployment's JSON
        assert train_clip.validate_parameters({"config": given})["config"] == coca
    clip = TrainConfig(data=coca.data, output_uri=coca.output_uri, steps=1)
    assert type(train_clip.validate_parameters({"config": clip.model_dump(mode="json")})["config"]) is TrainConfig


def test_a_fresh_coca_decoder_projection_is_initialised_not_left_empty(caption_digits, tmp_path):
    from clipline.pipelines.train.kinds import TRAINING_KINDS

    garbage = [torch.full((64, 49408), 1e30) for _ in range(4)]  # freed memory an empty tensor may reuse
    del garbage
    projection = TRAINING_KINDS["coca"].build(coca_config(caption_digits, tmp_path / "run")).model.text_decoder \
        .text_projection
    assert 0 < projection.std().item() < 1 and torch.isfinite(projection).all()
