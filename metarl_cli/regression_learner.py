"""MAML's view of a regression family: support and query batches are (x, y) points of the task, the
loss and the score are the mean squared error.

Both batches come from the task's own key, not the step's: every inner step of an adaptation sees
the same K support points, as in the MAML paper. With `task_input` the network also sees the task's
description vector (its parameters, scaled): that is the oracle baseline, which needs no adaptation.
"""

from __future__ import annotations

import jax.numpy as jnp

from metarl_cli.families.regression import QUERY, SUPPORT, RegressionFamily
from metarl_cli.meta import Learner, Model
from metarl_cli.nets import MLP


def regression_model(family: RegressionFamily, hidden, shots: int, query_points: int, eval_query_points: int, task_input: bool) -> Model:
    net = MLP(tuple(hidden), 1)
    in_dim = 1 + (len(family.ranges) if task_input else 0)

    def predict(params, task, x):
        inputs = x[:, None]
        if task_input:
            inputs = jnp.concatenate([inputs, jnp.broadcast_to(family.describe(task), (x.shape[0], in_dim - 1))], axis=1)
        return net.apply(params, inputs)[:, 0]

    def mse(params, batch):
        task, x, y = batch
        return jnp.mean(jnp.square(predict(params, task, x) - y))

    def learner(n_query: int) -> Learner:
        return Learner(
            support=lambda params, task, key: (task, *family.points(task, SUPPORT, shots)),
            query=lambda params, task, key: (task, *family.points(task, QUERY, n_query)),
            loss=mse,
            score=mse,
            hessian="autodiff",  # measured faster here: a few points through a small network
        )

    return Model(
        init=lambda key: net.init(key, jnp.zeros((in_dim,))),
        learner=learner(query_points or shots),
        eval_learner=learner(eval_query_points),
        score_name="mse",
        maximize=False,
        env_steps_per_batch=0,
    )
