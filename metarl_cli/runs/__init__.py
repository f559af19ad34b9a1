"""Run directories: layout and manifest, Orbax checkpoints, and the training loop that fills them."""
