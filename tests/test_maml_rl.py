"""MAML-RL behaviour: one inner policy-gradient step improves the policy on its own task."""

import jax
import numpy as np

from metarl_cli.algos import make_algorithm
from metarl_cli.config import MamlRLConfig
from metarl_cli.families import get_family


def test_adapted_policy_improves_on_its_task():
    config = MamlRLConfig(env="point-nav", lanes=20, hidden=(32, 32), inner_lr=0.1)
    family = get_family("point-nav")
    algo = make_algorithm("maml", config, family)
    params = algo.init_params(jax.random.PRNGKey(0))
    tasks = family.sample(jax.random.PRNGKey(1), 64, "test")
    scores = np.asarray(algo.adaptation_curve(params, tasks, jax.random.PRNGKey(2), 2))
    gain = scores[:, 2] - scores[:, 0]
    assert gain.mean() > 3 * gain.std(ddof=1) / np.sqrt(len(gain)), scores
