"""metarl: a command-line experiment runner for meta-reinforcement learning in JAX."""

__version__ = "0.1.0"
