"""DQN with experience replay and a target network, the whole loop one compiled scan.

One iteration: `train_every / num_envs` steps of `num_envs` environments acting epsilon-greedily,
their transitions written to the replay buffer, then (after `learning_starts` env steps) one
gradient step on a sampled batch and, every `target_update_every` env steps, a target update.
On a family with randomised parameters each environment draws a fresh train-split task whenever
its episode ends, so one network learns across the family (the multi-task, domain-randomisation
baseline); on a one-task family (`cartpole`) it is plain DQN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metarl_cli.algos.base import Algorithm
from metarl_cli.config import DqnConfig
from metarl_cli.families import Family, per_task
from metarl_cli.rl.q_learning import epsilon_greedy, family_q_network, linear_epsilon, td_loss, update_target
from metarl_cli.rl.replay import Transition, replay_add, replay_init, replay_sample
from metarl_cli.rl.rollout import first_episode_return, rollout


def _where_lanes(mask, new, old):
    """Per-lane select between two batched pytrees (leading axis = lanes)."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


def make_dqn(config: DqnConfig, family: Family) -> Algorithm:
    q = family_q_network(family, config.hidden)
    optimizer = optax.adam(config.lr)
    lanes = config.num_envs
    vector_steps = config.train_every // lanes
    decay_steps = config.exploration_fraction * config.total_steps
    reset = jax.vmap(family.env.reset)
    step_env = jax.vmap(family.env.step)

    def init(key):
        k_params, k_tasks, k_reset, k_run = jax.random.split(key, 4)
        params = q.init(k_params)
        tasks = family.sample(k_tasks, lanes, "train")
        obs, env_state = reset(jax.random.split(k_reset, lanes), tasks)
        example = Transition(obs[0], jnp.zeros((), jnp.int32), jnp.zeros(()), obs[0], jnp.zeros((), bool))
        return {
            "params": params,
            "target_params": params,
            "opt_state": optimizer.init(params),
            "replay": replay_init(example, config.buffer_size),
            "obs": obs,
            "env_state": env_state,
            "tasks": tasks,
            "episode_return": jnp.zeros((lanes,)),
            "key": k_run,
            "iteration": jnp.zeros((), jnp.int32),
        }

    def act(state, key, env_steps):
        """One step of every environment; returns the new state and (return sum, episodes) finished."""
        k_act, k_env, k_task = jax.random.split(key, 3)
        epsilon = linear_epsilon(env_steps, config.epsilon_start, config.epsilon_end, decay_steps)
        action = epsilon_greedy(q.values(state["params"], state["obs"]), epsilon, k_act)
        lane_keys = jax.random.split(k_env, lanes)
        obs, env_state, reward, terminated, truncated, info = step_env(lane_keys, state["env_state"], action, state["tasks"])
        replay = replay_add(state["replay"], Transition(state["obs"], action, reward, info["final_observation"], terminated))
        done = jnp.logical_or(terminated, truncated)
        episode_return = state["episode_return"] + reward
        finished = (jnp.sum(jnp.where(done, episode_return, 0.0)), jnp.sum(done))
        tasks = state["tasks"]
        if not family.one_task:  # a new task for every environment whose episode ended (drawn only then with one
            # seed; with several the vmapped conditional is a select, and both branches run every step)
            def redraw(carry):
                """The step auto-reset those environments with their old task; reset them again with the
                new one and the same key (gymnax's reset key: the step key's second half), so a reset
                that does not read the task (physics) is unchanged and one that does (a maze's goal) plays the new task."""
                tasks, obs, env_state = carry
                tasks = _where_lanes(done, family.sample(k_task, lanes, "train"), tasks)
                reset_keys = jax.vmap(lambda k: jax.random.split(k)[1])(lane_keys)
                new_obs, new_env_state = reset(reset_keys, tasks)
                return tasks, _where_lanes(done, new_obs, obs), _where_lanes(done, new_env_state, env_state)

            tasks, obs, env_state = jax.lax.cond(jnp.any(done), redraw, lambda carry: carry, (tasks, obs, env_state))
        new = {**state, "obs": obs, "env_state": env_state, "replay": replay, "tasks": tasks,
               "episode_return": jnp.where(done, 0.0, episode_return)}
        return new, finished, epsilon

    def learn(params, target_params, opt_state, batch):
        loss_fn = lambda p: td_loss(q, p, target_params, batch, config.gamma, config.double_dqn, config.huber)  # noqa: E731
        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, q_mean

    def skip(params, target_params, opt_state, batch):
        return params, opt_state, jnp.zeros(()), jnp.zeros(())

    def step(state):
        key, k_act, k_learn = jax.random.split(state["key"], 3)
        env_steps = state["iteration"] * config.train_every

        def act_once(carry, inputs):
            state, return_sum, episodes = carry
            k, i = inputs
            state, (r, n), epsilon = act(state, k, env_steps + i * lanes)
            return (state, return_sum + r, episodes + n), epsilon

        (state, return_sum, episodes), epsilons = jax.lax.scan(
            act_once, (state, jnp.zeros(()), jnp.zeros((), jnp.int32)), (jax.random.split(k_act, vector_steps), jnp.arange(vector_steps))
        )
        epsilon = epsilons[-1]
        steps_after = env_steps + config.train_every
        learning = steps_after > config.learning_starts
        # Only the small operands enter the branch: a conditional over the whole state copies the buffer.
        batch = replay_sample(state["replay"], k_learn, config.batch_size)
        params, opt_state, loss, q_mean = jax.lax.cond(
            learning, learn, skip, state["params"], state["target_params"], state["opt_state"], batch
        )
        state = {**state, "params": params, "opt_state": opt_state}
        refresh = jnp.logical_and(learning, steps_after % config.target_update_every == 0)
        target = update_target(state["target_params"], state["params"], config.tau)
        target = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), target, state["target_params"])
        state = {**state, "target_params": target, "key": key, "iteration": state["iteration"] + 1}
        metrics = {"loss": loss, "q_mean": q_mean, "learned": learning, "epsilon": epsilon, "return_sum": return_sum,
                   "episodes": episodes}
        return state, metrics

    def summarise(chunk):
        """A chunk's metrics (leading axis: iterations): mean return of the episodes that ended in it;
        mean loss and Q(s, a) of its gradient steps (none before `learning_starts`: NaN, logged null)."""
        episodes = chunk["episodes"].sum(axis=0)
        learned = chunk["learned"].sum(axis=0)

        def per(total, count):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

        return {"return": per(chunk["return_sum"].sum(axis=0), episodes), "episodes": episodes,
                "loss": per(chunk["loss"].sum(axis=0), learned), "q_mean": per(chunk["q_mean"].sum(axis=0), learned),
                "epsilon": chunk["epsilon"][-1]}

    def greedy(params, obs, key):
        return jnp.argmax(q.values(params, obs), axis=-1)

    @jax.jit
    def greedy_returns(params, tasks, key):
        return per_task(lambda t, k: first_episode_return(rollout(family.env, greedy, params, t, k, 1, family.horizon)), tasks, key)

    def adaptation_curve(params, tasks, key, steps: int, lr_scale: float = 1.0):
        """Plain DQN does not adapt: the greedy policy's return on each task (one column)."""
        return greedy_returns(params, tasks, key)[:, None]

    return Algorithm(
        init=init,
        step=step,
        adaptation_curve=adaptation_curve,
        init_params=q.init,
        env_steps_per_iteration=config.train_every,
        score_name="return",
        summarise=summarise,
        progress_metrics=("return", "loss", "epsilon"),
        best_metric="return",
        adapts=False,
    )
