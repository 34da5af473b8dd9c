"""ClipCap: `clipline train-captioner` on templated digit captions: checkpoints, frozen parts, decoding, bad input.

One module-wide chain of short real runs: a few contrastive steps of a small
32 px CLIP, then ClipCap runs on its frozen image tower. These check the
plumbing, not caption quality (the runs are far too short to caption well).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import GPT2LMHeadModel

from clipline.flows.cli import main
from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.caption.captioner import captioner_kind
from clipline.pipelines.caption.clipcap import load_clipcap
from clipline.pipelines.config import CaptionerTrainConfig, GenerateConfig, StoreConfig, TrainConfig
from clipline.pipelines.data.loader import image_sample
from clipline.pipelines.models.caption_lm import IGNORE, CaptionTokens
from clipline.pipelines.models.clipcap import LM_WEIGHTS, MAPPING_WEIGHTS
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.clipcap import validate_captions
from clipline.pipelines.train.kinds import TRAINING_KINDS
from clipline.pipelines.train.step import train_step
from clipline.pipelines.train.trainer import fit, plan_training
from support.captioning import save_local_gpt2
from support.shards import digit_images, png, write_digit_shards

TEMPLATES = ("a handwritten {}", "the digit {}", "a picture of a {}", "{} written by hand")
CLIP_CONFIG = Path(__file__).with_name("clipcap-test-clip.json")  # 32 px, 64 wide: a contrastive step is cheap
LM = {"n_layer": 2, "n_embd": 32, "n_head": 2}  # the output layer over open_clip's 49,408 tokens dominates
HELD_OUT = slice(4500, 4516)  # after the training and validation digits


def templated(label: int, index: int) -> str:
    return TEMPLATES[index % len(TEMPLATES)].format(DIGIT_NAMES[label])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clipcap")
    write_digit_shards(root / "train", num_shards=2, per_shard=64, caption_of=templated)
    write_digit_shards(root / "val", num_shards=1, per_shard=64, offset=4000, caption_of=templated)
    (root / "lm.json").write_text(json.dumps(LM))
    return root


def _store(root: Path) -> StoreConfig:
    return StoreConfig(results_uri=str(root / "results"))


@pytest.fixture(scope="module")
def clip_checkpoint(root) -> str:
    config = TrainConfig(data=str(root / "train"), model=str(CLIP_CONFIG), output_uri=str(root / "clip"), steps=4,
                         batch_size=64, lr=2e-3, warmup=2, weight_decay=0.0, workers=0, log_every=50,
                         data_workers=0, augment=False, store=_store(root))
    return fit(config, plan_training(config), "clipcap-clip")["checkpoint"]


def captioner_config(root: Path, clip: str, name: str, **overrides) -> CaptionerTrainConfig:
    values = dict(data=str(root / "train"), val_data=str(root / "val"), output_uri=str(root / name), clip=clip,
                  lm=str(root / "lm.json"), prefix_length=4, mapping_layers=2, steps=6, batch_size=32, lr=3e-3,
                  warmup=2, weight_decay=0.0, workers=0, log_every=50, data_workers=0, val_batches=1,
                  store=_store(root))
    return CaptionerTrainConfig(**{**values, **overrides})


def train(config: CaptionerTrainConfig) -> dict:
    return fit(config, plan_training(config), f"clipcap-{Path(config.output_uri).name}")


@pytest.fixture(scope="module")
def mlp_run(root, clip_checkpoint) -> tuple[CaptionerTrainConfig, dict]:
    config = captioner_config(root, clip_checkpoint, "mlp", mapping="mlp")
    return config, train(config)


def test_nucleus_sampling_repeats_with_its_seed(mlp_run):
    captioner = load_clipcap(mlp_run[1]["checkpoint"])
    images = digit_images()[0][HELD_OUT]
    batch = torch.stack([captioner.preprocess(Image.fromarray(pixels).convert("RGB")) for pixels in images])
    hot = dict(method="nucleus", top_p=0.95, temperature=3.0, max_length=8)  # hot enough that seeds differ
    first = captioner.generate(batch, GenerateConfig(seed=1, **hot))
    assert captioner.generate(batch, GenerateConfig(seed=1, **hot)) == first
    assert captioner.generate(batch, GenerateConfig(seed=2, **hot)) != first


def test_checkpoint_loads_back_with_the_validation_loss_of_training(mlp_run):
    """load_clipcap's model gives the caption loss that the training loop's own model had at that checkpoint."""
    config, summary = mlp_run
    captioner = load_clipcap(summary["checkpoint"])
    tokens = CaptionTokens(captioner.tokenizer, config.max_caption_tokens)
    loss = validate_captions(captioner.model, config, image_sample(captioner.preprocess), tokens,
                             torch.device("cpu"))["caption_loss"]
    assert loss == pytest.approx(summary["val_caption_loss"], rel=1e-5)
    assert captioner_kind(ckpt.local_copy(summary["checkpoint"])) == "clipcap"


def test_clip_tower_is_bitwise_unchanged(clip_checkpoint, mlp_run):
    before = ckpt.load_checkpoint(clip_checkpoint).weights
    after = ckpt.load_checkpoint(mlp_run[1]["checkpoint"]).weights
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)


def _step_grads(config: CaptionerTrainConfig, micro_batches) -> tuple[float, dict]:
    """One training step of a fresh ClipCap (same seed: same initial weights) at lr 0: its loss and gradients.
    In eval mode: GPT-2's dropout would give the two steps different functions."""
    built = TRAINING_KINDS["clipcap"].build(config)
    built.model.eval()
    trainable = [p for p in built.model.parameters() if p.requires_grad]
    loss = train_step(built.model, built.loss, torch.optim.SGD(trainable, lr=0.0), None, micro_batches, config,
                      torch.device("cpu"))
    return loss, {n: p.grad.clone() for n, p in built.model.named_parameters() if p.grad is not None}


def test_accumulating_4_micro_batches_gives_the_gradients_of_one_batch(root, clip_checkpoint):
    """The caption loss is a mean over each micro-batch's tokens: accumulated, each of the K weighs 1/K (the
    captions here are equally long, so the mean of the means is the batch's mean)."""
    config = captioner_config(root, clip_checkpoint, "accum", val_data=None)
    built = TRAINING_KINDS["clipcap"].build(config)
    images, labels = digit_images()
    pixels = torch.stack([built.decode_val({"png": png(images[i]), "txt": b""})[0] for i in range(16)])
    tokens = built.tokenizer([f"the digit {DIGIT_NAMES[int(label)]}" for label in labels[:16]])
    assert (tokens != IGNORE).sum(1).unique().numel() == 1  # as many tokens in every caption
    whole_loss, whole = _step_grads(config, [(pixels, tokens)])
    micro = [(pixels[i:i + 4], tokens[i:i + 4]) for i in range(0, 16, 4)]
    accumulated_loss, accumulated = _step_grads(config.model_copy(update={"accum_freq": 4}), micro)
    assert whole.keys() == accumulated.keys() and whole
    for name in whole:
        assert torch.allclose(whole[name], accumulated[name], atol=1e-6, rtol=0), name
    assert accumulated_loss == pytest.approx(whole_loss, abs=1e-6)


def test_frozen_local_gpt2_stays_bitwise_while_the_mapping_trains(root, clip_checkpoint, tmp_path):
    """--lm FOLDER --freeze-lm (the paper's transformer setup): the checkpoint's LM is the folder's, bit for bit,
    the mapping moved, and the checkpoint carries the GPT-2's tokenizer (it captions with the folder gone)."""
    save_local_gpt2(tmp_path / "gpt2", [templated(label, i) for label in range(10) for i in range(len(TEMPLATES))],
                    **LM)
    config = captioner_config(root, clip_checkpoint, "frozen", lm=str(tmp_path / "gpt2"), freeze_lm=True,
                              mapping="transformer", steps=3, val_data=None)
    uri = train(config)["checkpoint"]
    files = ckpt.load_checkpoint(uri, files=[LM_WEIGHTS, MAPPING_WEIGHTS]).files
    pretrained = GPT2LMHeadModel.from_pretrained(tmp_path / "gpt2").state_dict()
    assert all(torch.equal(files[LM_WEIGHTS][key], pretrained[key]) for key in pretrained)
    initial = TRAINING_KINDS["clipcap"].build(config).model.mapping.state_dict()  # same seed, same initial weights
    assert not all(torch.equal(files[MAPPING_WEIGHTS][key], initial[key]) for key in initial)
    shutil.rmtree(tmp_path / "gpt2")
    captioner = load_clipcap(uri)
    batch = torch.stack([captioner.preprocess(Image.new("RGB", (28, 28)))] * 2)
    assert all(isinstance(c, str) for c in captioner.generate(batch, GenerateConfig(method="greedy", max_length=4)))


def _cli_error(tmp_path: Path, capsys, *options: str) -> str:
    out = tmp_path / "bad-run"
    code = main(["train-captioner", "--data", str(tmp_path / "shards"), "--out", str(out), "--clip",
                 str(tmp_path / "clip"), "--steps", "1", *options])
    assert code == 2
    assert not out.exists()  # nothing started
    return capsys.readouterr().err


def test_lm_folder_without_config_is_a_clear_error(capsys, tmp_path):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "model.safetensors").write_bytes(b"")
    err = _cli_error(tmp_path, capsys, "--lm", str(tmp_path / "gpt2"))
    assert f"--lm {tmp_path / 'gpt2'} is not a model folder: it has no config.json" in err
    assert "save_pretrained" in err  # the fix


def test_lm_text_file_is_a_clear_error(capsys, tmp_path):
    notes = tmp_path / "gpt2.txt"
    notes.write_text("not a model")
    err = _cli_error(tmp_path, capsys, "--lm", str(notes))
    assert "is neither a model folder nor a JSON GPT-2 config" in err and "save_pretrained" in err


def test_prefix_length_zero_is_a_clear_error(capsys, tmp_path):
    err = _cli_error(tmp_path, capsys, "--prefix-length", "0")
    assert "--prefix-length 0: the mapping network needs at least one prefix position" in err
    assert "N >= 1" in err
