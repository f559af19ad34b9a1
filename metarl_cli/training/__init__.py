"""Training runs: the run directory and manifest, Orbax checkpoints, the training loop (and several
side by side), the final returns a DQN run reports, and the progress bar and consoles."""
