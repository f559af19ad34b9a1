"""Training runs: the run directory and manifest, Orbax checkpoints, the training loop, progress."""
