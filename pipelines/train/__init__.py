"""Training: the Ray Train driver, the per-worker loop, optimizers and checkpoints."""
