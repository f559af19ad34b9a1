"""MAML for RL: a policy initialisation that one or a few policy-gradient steps adapt to a task.

Inner loop: `inner_steps` policy-gradient steps (DiCE or LVC surrogate), each on fresh rollouts of the
current adapted policy. Outer loop: the adapted policy's loss on query rollouts, averaged over a meta-batch of
train-split tasks (vmapped), optimised with Adam. With inner_steps = 0 the same step is multi-task
policy-gradient training, which is how the pretrained baseline is made.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from metarl_cli.algos.base import Algorithm
from metarl_cli.config import MamlConfig
from metarl_cli.families import Family
from metarl_cli.meta import adaptation_curve, meta_loss
from metarl_cli.nets import make_policy
from metarl_cli.rl.learner import rl_learner


def _global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def make_maml(config: MamlConfig, family: Family) -> Algorithm:
    horizon = family.horizon
    policy = make_policy(family.obs_dim, family.action_dim, family.discrete, config.hidden)
    learner = rl_learner(
        family, policy, config.lanes, horizon, config.gamma, config.normalize_advantages, config.estimator
    )
    clip = [optax.clip_by_global_norm(config.max_grad_norm)] if config.max_grad_norm > 0 else []
    optimizer = optax.chain(*clip, optax.adam(config.outer_lr))

    def init(key):
        k_params, k_run = jax.random.split(key)
        params = policy.init(k_params)
        return {"params": params, "opt_state": optimizer.init(params), "key": k_run, "iteration": jnp.zeros((), jnp.int32)}

    def task_loss(params, task, key):
        return meta_loss(learner, params, task, key, config.inner_steps, config.inner_lr, config.first_order)

    def batch_loss(params, tasks, keys):
        losses, (pre, post) = jax.vmap(task_loss, in_axes=(None, 0, 0))(params, tasks, keys)
        return jnp.mean(losses), (jnp.mean(pre), jnp.mean(post))

    @jax.jit
    def step(state):
        key, k_tasks, k_loss = jax.random.split(state["key"], 3)
        tasks = family.sample(k_tasks, config.meta_batch, "train")
        keys = jax.random.split(k_loss, config.meta_batch)
        (loss, (pre, post)), grads = jax.value_and_grad(batch_loss, has_aux=True)(state["params"], tasks, keys)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        new_state = {
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            "key": key,
            "iteration": state["iteration"] + 1,
        }
        metrics = {"loss": loss, "pre_return": pre, "post_return": post, "grad_norm": _global_norm(grads)}
        return new_state, metrics

    @jax.jit
    def curve(params, tasks, key, lrs):
        n = jax.tree.leaves(tasks)[0].shape[0]
        return jax.vmap(lambda t, k: adaptation_curve(learner, params, t, k, lrs))(tasks, jax.random.split(key, n))

    def adaptation_curve_fn(params, tasks, key, steps: int):
        lrs = config.inner_lr * jnp.where(jnp.arange(steps) == 0, 1.0, config.later_lr_scale)
        return curve(params, tasks, key, lrs)

    return Algorithm(
        init=init,
        step=step,
        adaptation_curve=adaptation_curve_fn,
        init_params=policy.init,
        env_steps_per_iteration=config.meta_batch * (config.inner_steps + 1) * config.lanes * horizon,
        score_name="return",
    )
