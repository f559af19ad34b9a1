"""The MAML mechanism shared by every gradient-based meta-learner: inner adaptation, meta-loss and
the adaptation curve used at evaluation.

An algorithm supplies a `Learner`: how to draw a support and a query batch for a task (possibly with
the current parameters, as RL does) and the loss on a batch. The inner loop takes `steps` gradient
steps, each on a support batch drawn with the parameters adapted so far (a learner that should
reuse the same points derives them from the task rather than the key); the meta-loss is the loss
of the adapted parameters on a query batch, for a meta-batch of tasks at once (`meta_batch_loss`).
Second-order by default: the outer gradient flows through the inner gradients. `first_order` stops
it there. `lr` is a scalar or a pytree shaped like the parameters (per-parameter rates, Meta-SGD).
The meta-batch's losses are differentiated a few tasks a pass, as many as a core's L2 cache holds on
a CPU (`cpu_tasks_per_pass`, which reads the cache's size from Linux).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Learner(NamedTuple):
    support: Callable[[Any, Any, jax.Array], Any]  # (params, task, key) -> batch; not differentiated
    query: Callable[[Any, Any, jax.Array], Any]  # (params, task, key) -> batch; not differentiated
    loss: Callable[[Any, Any], jax.Array]  # (params, batch) -> scalar to minimise
    score: Callable[[Any, Any], jax.Array]  # (params, batch) -> the number a user reads (return, or MSE)
    # How the second-order meta-gradient differentiates an inner step: "hvp" (forward-over-reverse
    # Hessian-vector products that recompute activations; faster and leaner on large batches) or
    # "autodiff" (reverse mode through the gradient; fewer kernels, faster on tiny batches).
    hessian: str = "hvp"
    # How many tasks' losses are differentiated in one pass; 0: the whole meta-batch at once. On a
    # CPU, passes whose activations fit in a core's cache (`cpu_tasks_per_pass`) are much faster than
    # one pass over arrays that spill to memory; the query loss's activations are then recomputed in
    # its backward pass, while they are in cache, rather than stored.
    tasks_per_pass: int = 0


class Model(NamedTuple):
    """What MAML adapts on one kind of task family: the parameters' initialiser and the learners."""

    init: Callable[[jax.Array], Any]  # key -> parameters
    learner: Learner  # meta-training's batches
    eval_learner: Learner  # evaluation's batches (e.g. more query points)
    score_name: str  # "return" or "mse"
    maximize: bool  # whether a higher score is better
    env_steps_per_batch: int  # environment steps one support or query batch simulates (0 for regression)


DEFAULT_CORE_CACHE_BYTES = 1 << 20  # a core's L2 cache where the OS does not say (1 MiB is common)


def core_cache_bytes(caches: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """The size of a core's L2 cache as Linux reports it under `caches`, else DEFAULT_CORE_CACHE_BYTES."""
    for index in caches.glob("index*"):
        try:
            if (index / "level").read_text().strip() == "2" and (index / "type").read_text().strip() != "Instruction":
                size = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
        except (OSError, ValueError):
            continue
    return DEFAULT_CORE_CACHE_BYTES


def cpu_tasks_per_pass(rows_per_task: int, width: int) -> int:
    """`Learner.tasks_per_pass` for tasks of `rows_per_task` rows through layers up to `width` wide:
    on a CPU, as many tasks as keep one layer's float32 activations within a quarter of a core's L2
    cache (at least one), the rest for what a gradient pass holds beside them (the other layers, the
    cotangents, the tangents of a Hessian-vector product); on an accelerator the whole meta-batch (0),
    which wants the widest arrays.

    Measured on 2-core CPUs, one process splitting the meta-batch over the cores. With 1 MiB of L2 a
    core (AMD EPYC): CartPole's 64-wide policy on 4,000-row tasks took 107.4 ms a meta-iteration at
    one task a pass (1.0 MB) against 117.3 ms at two; point-nav's 100-wide one on 2,000-row tasks
    70.8 ms at one (0.8 MB), 86.8 ms at two, 126.3 ms at four; with 10 lanes (0.5 and 0.4 MB a task)
    two tasks a pass ran as fast as one (35.5 against 35.3 ms, 51.0 against 51.4 ms). With 2 MiB
    (Intel Xeon), where a whole cache holds two tasks of either: one task a pass took CartPole 99 to
    108 ms against 103 to 112 ms at two, point-nav 70 to 77 ms against 78 to 89 ms; with 10 lanes,
    where half the cache holds two tasks, 46 to 50 ms against 51 to 54 ms; maml-dqn's defaults (0.38
    MB a task, five tasks, one device on a one-thread pool) 19.0 to 21.0 ms against 21.2 to 22.2 ms at
    two and 21.8 to 22.8 ms at five (alternating runs)."""
    if jax.default_backend() != "cpu":
        return 0
    return max(1, core_cache_bytes() // 4 // (rows_per_task * width * 4))


def inner_step(learner: Learner, params, batch, lr, first_order: bool):
    """One inner SGD step, params - lr * grad. Its derivative: none with `first_order`; JAX's own,
    through the gradient, with `hessian = "autodiff"`; else `_sgd_step_bwd`'s Hessian-vector product."""
    if first_order:
        grads = jax.lax.stop_gradient(jax.grad(learner.loss)(params, batch))
        return _descend(params, grads, lr)
    if learner.hessian == "autodiff":
        return _descend(params, jax.grad(learner.loss)(params, batch), lr)
    if learner.hessian != "hvp":
        raise ValueError(f"Learner.hessian must be 'hvp' or 'autodiff', got {learner.hessian!r}")
    return _sgd_step(learner.loss, params, batch, lr)


def _descend(params, grads, lr):
    if _is_scalar(lr):
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)
    return jax.tree.map(lambda p, g, a: p - a * g, params, grads, lr)


def _is_scalar(lr) -> bool:
    """A number or 0-d array, as opposed to a pytree of per-parameter rates."""
    return isinstance(lr, (int, float)) or getattr(lr, "ndim", None) == 0


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sgd_step(loss, params, batch, lr):
    return _descend(params, jax.grad(loss)(params, batch), lr)


def _sgd_step_fwd(loss, params, batch, lr):
    grads = jax.grad(loss)(params, batch)
    return _descend(params, grads, lr), (params, batch, lr, grads)


def _sgd_step_bwd(loss, residuals, v):
    """Pull v back through params - lr * grad: v - H (lr * v), with H the loss Hessian.

    The Hessian-vector product is forward-over-reverse (a jvp of the gradient), cheaper than
    differentiating the gradient in reverse again, and it keeps only the inputs of the step: the
    inner loop's activations are recomputed here, so memory does not grow with the inner loop's
    activations (rematerialisation by construction).
    """
    params, batch, lr, grads = residuals
    scaled = jax.tree.map(lambda x: lr * x, v) if _is_scalar(lr) else jax.tree.map(jnp.multiply, lr, v)
    _, hv = jax.jvp(lambda p: jax.grad(loss)(p, batch), (params,), (scaled,))
    d_params = jax.tree.map(jnp.subtract, v, hv)
    if _is_scalar(lr):
        d_lr = -sum(jnp.vdot(g, x) for g, x in zip(jax.tree.leaves(grads), jax.tree.leaves(v)))
        d_lr = jnp.asarray(d_lr, dtype=jnp.result_type(lr))
    else:
        d_lr = jax.tree.map(lambda g, x: -g * x, grads, v)
    return d_params, _zero_cotangent(batch), d_lr


def _zero_cotangent(tree):
    def zero(x):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            return jnp.zeros_like(x)
        return np.zeros(x.shape, dtype=jax.dtypes.float0)

    return jax.tree.map(zero, tree)


_sgd_step.defvjp(_sgd_step_fwd, _sgd_step_bwd)


def meta_batch_loss(learner: Learner, params, tasks, keys, steps: int, lr, first_order: bool):
    """Each task's query loss of its adapted parameters, and its score before and after adapting: (n,) each.

    `tasks` and `keys` have a leading task axis; the parameters are shared. Every batch is drawn for
    all tasks at once (vmapped: a rollout is many small operations that want wide arrays), and the
    losses are differentiated `learner.tasks_per_pass` tasks at a time (see `Learner`). keys[i]
    splits into task i's support keys (one per inner step) and its query key.
    """
    key_pairs = jax.vmap(jax.random.split)(keys)
    step_keys = jax.vmap(lambda k: jax.random.split(k, max(steps, 1)))(key_pairs[:, 0])
    tasks_per_pass = learner.tasks_per_pass if learner.tasks_per_pass < keys.shape[0] else 0  # 0: one pass
    adapted, shared, pre_score = params, True, None
    for i in range(steps):
        batch = _draw(learner.support, adapted, shared, tasks, step_keys[:, i])
        if pre_score is None:
            pre_score = jax.vmap(learner.score, in_axes=(None, 0))(params, batch)
        step = lambda p, b: inner_step(learner, p, b, lr, first_order)  # noqa: E731
        adapted, shared = _per_pass(step, adapted, shared, batch, tasks_per_pass), False
    batch = _draw(learner.query, adapted, shared, tasks, key_pairs[:, 1])
    post_score = jax.vmap(learner.score, in_axes=(None if shared else 0, 0))(adapted, batch)
    if pre_score is None:  # no inner steps: plain multi-task training
        pre_score = post_score
    loss = jax.checkpoint(learner.loss) if tasks_per_pass else learner.loss
    return _per_pass(loss, adapted, shared, batch, tasks_per_pass), (pre_score, post_score)


def _draw(draw, params, shared: bool, tasks, keys):
    """A batch per task from `draw(params, task, key)`; `shared`: one set of parameters for all tasks."""
    return jax.vmap(draw, in_axes=(None if shared else 0, 0, 0))(params, tasks, keys)


def _per_pass(fn, params, shared: bool, batches, tasks_per_pass: int):
    """fn(params_i, batch_i) for every task, `tasks_per_pass` tasks at a time (all at once if 0)."""
    if shared:
        one = lambda b: fn(params, b)  # noqa: E731
        xs = batches
    else:
        one = lambda pb: fn(*pb)  # noqa: E731
        xs = (params, batches)
    if not tasks_per_pass:
        return jax.vmap(one)(xs)
    return jax.lax.map(one, xs, batch_size=tasks_per_pass)


def adaptation_curve(learner: Learner, params, task, key, lr, scales: jax.Array) -> jax.Array:
    """Query score after 0, 1, ..., len(scales) inner steps on one task, step j at rate scales[j] * lr.

    `lr` is a scalar or per-parameter rates (Meta-SGD); steps are first order, as at test time
    nothing differentiates through them. Parameters that are no longer finite score NaN (the
    adaptation diverged): a categorical policy with NaN logits still acts, always its first action,
    and would earn an ordinary-looking return. The j-th support batch and the query after j steps
    draw from `key` folded with j, so the score after j steps is the same however many steps follow.
    """
    steps = scales.shape[0]

    def keys(j):
        """(the j-th support batch's key, the key of the query after j steps)"""
        return jax.random.split(jax.random.fold_in(key, j))

    def score_after(params, k_query):
        score = learner.score(params, learner.query(params, task, k_query))
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(params)]))
        return jnp.where(finite, score, jnp.nan)

    def body(params, xs):
        j, scale = xs
        k_support, k_query = keys(j)
        step_lr = jax.tree.map(lambda a: scale * a, lr)
        batch = learner.support(params, task, k_support)
        return inner_step(learner, params, batch, step_lr, first_order=True), score_after(params, k_query)

    params, scores = jax.lax.scan(body, params, (jnp.arange(steps), scales))
    final = score_after(params, keys(steps)[1])
    return jnp.concatenate([scores, final[None]])
