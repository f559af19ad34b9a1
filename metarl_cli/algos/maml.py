"""MAML: an initialisation that one or a few gradient steps adapt to a new task; Meta-SGD as an option.

The task family decides what a step adapts on (`Model`): rollouts and a policy-gradient surrogate
for a gymnax family, (x, y) points and the squared error for a regression family, and for
maml-dqn epsilon-greedy transitions and the TD error of a Q-network. The loop is the
same: `inner_steps` gradient steps per task (second order unless `first_order`), the adapted
parameters' query loss averaged over a meta-batch of train-split tasks (`meta.meta_batch_loss`;
split over the local devices with one seed, `devices.split_tasks`), Adam outside.
With `learn_inner_lr` (Meta-SGD, Li et al. 2017) the meta-parameters are {"init": theta, "inner_lr":
a rate per parameter, starting at inner_lr} and both are meta-learned. With inner_steps = 0 the same
step is plain multi-task training, which is how the pretrained baseline is made.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from metarl_cli.algos.base import Algorithm
from metarl_cli.optim import clipped_adam
from metarl_cli.config import MamlConfig, MamlDqnConfig
from metarl_cli.devices import even_mesh, replicate, split_tasks, uneven_split_note
from metarl_cli.families import RegressionFamily, TaskDistribution, per_task
from metarl_cli.meta import Model, adaptation_curve, meta_batch_loss
from metarl_cli.regression_learner import regression_model
from metarl_cli.rl.learner import rl_model
from metarl_cli.rl.q_learner import q_model


def model_for(config: MamlConfig, family: TaskDistribution) -> Model:
    if isinstance(family, RegressionFamily):
        return regression_model(
            family, config.hidden, config.shots, config.query_points, config.eval_query_points, config.task_input
        )
    if isinstance(config, MamlDqnConfig):  # maml-dqn: the same loop on a Q-network and TD steps
        return q_model(family, config.hidden, config.lanes, family.horizon, config.gamma, config.epsilon)
    return rl_model(family, config.hidden, config.lanes, family.horizon, config.gamma, config.normalize_advantages, config.estimator)


def with_inner_rates(theta, config: MamlConfig):
    """The meta-parameters that stand for `theta` under `config`: with Meta-SGD, {"init": theta,
    "inner_lr": every rate at inner_lr}; without, theta itself."""
    if not config.learn_inner_lr:
        return theta
    return {"init": theta, "inner_lr": jax.tree.map(lambda p: jnp.full_like(p, config.inner_lr), theta)}


def make_maml(config: MamlConfig, family: TaskDistribution) -> Algorithm:
    model = model_for(config, family)
    optimizer = clipped_adam(config.outer_lr, config.max_grad_norm)

    # A learner whose tasks are differentiated in cache-sized passes (RL and maml-dqn on a CPU) fills a device
    # with one task's work: its meta-batch is split over the local devices (with one seed; several
    # seeds share the devices out instead, seed_mesh) and several seeds on a device run one after
    # another. Small tasks are not split: at meta-batch 24 the sinusoid ran at 2,200-2,500 it/s whole
    # and 1,250-1,650 split, the cross-device mean costing more than the halved step.
    large_tasks = model.learner.tasks_per_pass > 0
    splits_tasks = large_tasks and config.seeds == 1
    task_mesh = even_mesh(config.meta_batch, "tasks") if splits_tasks else None
    uneven = uneven_split_note(config.meta_batch, "the meta-batch's tasks", "meta_batch") if splits_tasks else None

    def init_params(key):
        return with_inner_rates(model.init(key), config)

    def initialisation_and_rate(meta_params):
        if config.learn_inner_lr:
            return meta_params["init"], meta_params["inner_lr"]
        return meta_params, config.inner_lr

    def init(key):
        k_params, k_run = jax.random.split(key)
        params = init_params(k_params)
        state = {"params": params, "opt_state": optimizer.init(params), "key": k_run, "iteration": jnp.zeros((), jnp.int32)}
        return replicate(state, task_mesh)

    def batch_loss(meta_params, tasks, keys):
        theta, lr = initialisation_and_rate(meta_params)
        losses, (pre, post) = meta_batch_loss(model.learner, theta, tasks, keys, config.inner_steps, lr, config.first_order)
        return jnp.mean(losses), (jnp.mean(pre), jnp.mean(post))

    loss_and_grads = split_tasks(jax.value_and_grad(batch_loss, has_aux=True), task_mesh)

    def step(state):
        key, k_tasks, k_loss = jax.random.split(state["key"], 3)
        tasks = family.sample(k_tasks, config.meta_batch, "train")
        keys = jax.random.split(k_loss, config.meta_batch)
        (loss, (pre, post)), grads = loss_and_grads(state["params"], tasks, keys)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        new_state = {
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            "key": key,
            "iteration": state["iteration"] + 1,
        }
        name = model.score_name
        metrics = {"loss": loss, f"pre_{name}": pre, f"post_{name}": post, "grad_norm": optax.tree.norm(grads)}
        return new_state, metrics

    @jax.jit
    def curve(meta_params, tasks, key, scales):
        theta, lr = initialisation_and_rate(meta_params)
        return per_task(lambda t, k: adaptation_curve(model.eval_learner, theta, t, k, lr, scales), tasks, key)

    def adaptation_curve_fn(meta_params, tasks, key, steps: int, lr_scale: float = 1.0):
        scales = lr_scale * jnp.where(jnp.arange(steps) == 0, 1.0, config.later_lr_scale)
        return curve(meta_params, tasks, key, scales)

    return Algorithm(
        init=init,
        step=step,
        adaptation_curve=adaptation_curve_fn,
        init_params=init_params,
        env_steps_per_iteration=config.meta_batch * (config.inner_steps + 1) * model.env_steps_per_batch,
        score_name=model.score_name,
        maximize=model.maximize,
        vmap_seeds=not large_tasks,
        devices=1 if task_mesh is None else task_mesh.size,
        notes=(uneven,) if uneven else (),
    )
