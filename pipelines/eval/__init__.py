"""Evaluation: zero-shot classification, retrieval and linear probes, with clip_benchmark's metric definitions.

- what to evaluate: `checkpoints` (CKPT forms) -> `features` (load a checkpoint, embed images and texts; dataset
  distances use it too)
- what to evaluate on: `readers` (one registry entry per layout) over `sources` (tar members, files, URLs),
  checked by `datasets`
- how: `context` (one pair's features, computed once), `prompts` (templates and strategies), `metrics`, and a
  module per task: `zeroshot`, `retrieval`, `probe`, `captioning` (a captioner's captions scored by
  `captioning_metrics`, tokenized by `ptb_tokenize`); `plots` draws confusion matrices
- `runner` plans every (checkpoint, dataset) pair, evaluates them (here or on Ray) and stores `results`
"""
