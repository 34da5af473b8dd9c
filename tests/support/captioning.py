"""Digits with templated captions, a tiny CoCa and a digits CLIP, shared by the captioning and distillation tests."""

from __future__ import annotations

import json
from pathlib import Path

from clipline.pipelines.config import CocaTrainConfig, StoreConfig, TrainConfig
from support.curation import NOISE_MODEL
from support.shards import templated_caption, write_digit_shards

COCA_MICRO = str(Path(__file__).with_name("coca-micro.json"))  # 28 px digits, 8-token captions
NUM_HELD_OUT = 500
PLUMBING_STEPS = 20  # enough for a checkpoint that generates; the captions are not yet good
# The quality test's CoCa (coca-micro with a word-level tokenizer) at batch 128 and lr 3e-3, read in-process: 800
# steps name 89.8% of the held-out digits right, 600 steps 84.4% (the same on a rerun: CPU training is deterministic
# here), 400 steps 75.8% (65.2% at lr 6e-3); 600 steps took about 105 s on 2 cores. The test reads with two loader
# processes (fit_beside_loaders): 600 steps then name 89.6% right, CIDEr 3.62 against the baseline's 3.56.
ACCURACY_STEPS = 600


TRAIN_SHARDS = "{00000..00009}.tar"


def write_caption_digits(root: Path) -> Path:
    """Training digits (10 x 400, indices 0-3999) and 500 held-out ones (from index 4000), each caption one of
    three templates ("the digit seven", ...)."""
    write_digit_shards(root / "train", num_shards=10, per_shard=400, caption_of=templated_caption)
    write_digit_shards(root / "held-out", num_shards=1, per_shard=NUM_HELD_OUT, offset=4000,
                       caption_of=templated_caption)
    return root


def coca_config(digits: Path, run: Path, **overrides) -> CocaTrainConfig:
    settings = dict(data=str(digits / "train" / TRAIN_SHARDS), output_uri=str(run), model=COCA_MICRO,
                    steps=PLUMBING_STEPS, batch_size=64, lr=3e-3, warmup=5, workers=0, log_every=10,
                    augment=False, data_workers=0, store=StoreConfig(results_uri=str(run.parent / "results")))
    settings = {**settings, **overrides}
    return CocaTrainConfig(**settings, checkpoint_every=settings["steps"])


def fit_beside_loaders(config: TrainConfig, run_id: str) -> dict:
    """fit() a config that reads with DataLoader processes, with one intra-op thread (as OMP_NUM_THREADS=1
    would): on 2 cores, 28 px digits decode slower than these small models step, so the cores go to decoding.
    digits-clip's 400 steps: 53 s with two loader processes and one thread, 74 s in-process with two threads;
    two threads beside the two loaders oversubscribe the cores and run slower than either."""
    from clipline.pipelines.eval.features import torch_threads
    from clipline.pipelines.train.trainer import fit, plan_training

    with torch_threads(1):
        return fit(config, plan_training(config), run_id)


def digits_clip_config(digits: Path, run: Path, **overrides) -> TrainConfig:
    """support's digits-clip (2-layer ViT, 28 px): 400 steps of 128 on the 4,000 training digits tell the digits
    apart (zero-shot top-1 0.88 on the held-out 500 in-process with seed 0, 75 s on 2 cores)."""
    settings = dict(data=str(digits / "train" / TRAIN_SHARDS), output_uri=str(run), model=str(NOISE_MODEL), steps=400,
                    batch_size=128, lr=3e-3, warmup=10, weight_decay=0.0, workers=0, log_every=100, data_workers=0,
                    augment=False, store=StoreConfig(results_uri=str(run.parent / "results")))
    settings = {**settings, **overrides}
    return TrainConfig(**settings, checkpoint_every=settings["steps"])


def save_word_tokenizer(folder: Path, texts: list[str]) -> int:
    """A transformers tokenizer folder with one id per word of `texts` (pad 0, start 1, end 2; every text framed
    as start ... end), as a CoCa model config's text_cfg.hf_tokenizer_name names it. Returns its size."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<start>", "<end>", "<unk>"]
    words = sorted({w for t in texts for w in t.split()})
    vocab = {token: i for i, token in enumerate(specials + words)}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.post_processor = processors.TemplateProcessing(single="<start> $A <end>",
                                                              special_tokens=[("<start>", 1), ("<end>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", bos_token="<start>",
                                        eos_token="<end>", unk_token="<unk>")
    tokenizer.save_pretrained(folder)
    return len(tokenizer)


def small_vocab_coca(folder: Path, texts: list[str], base: str = COCA_MICRO) -> str:
    """coca-micro with a word-level tokenizer of `texts` (a few dozen tokens instead of CLIP's 49,408): a model
    config JSON in `folder` beside the tokenizer folder it names."""
    size = save_word_tokenizer(folder / "tokenizer", texts)
    config = json.loads(Path(base).read_text())
    config["text_cfg"].update(vocab_size=size, hf_tokenizer_name=str(folder / "tokenizer"))
    config["multimodal_cfg"].update(vocab_size=size)
    path = folder / "coca-words.json"
    path.write_text(json.dumps(config))
    return str(path)


def save_local_gpt2(folder: Path, texts: list[str], **gpt2) -> None:
    """A small GPT-2 folder as save_pretrained writes one: a byte-level BPE tokenizer of about 400 tokens trained on
    `texts`, and an untrained GPT2LMHeadModel of `gpt2` (n_layer, n_embd, n_head)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    eos_token = "<|endoftext|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=[eos_token],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe, eos_token=eos_token, bos_token=eos_token, unk_token=eos_token)
    tokenizer.save_pretrained(folder)
    eos = tokenizer.eos_token_id
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, bos_token_id=eos, eos_token_id=eos,
                               **gpt2)).save_pretrained(folder)
