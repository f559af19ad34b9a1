"""Reinforcement-learning mechanisms shared by the algorithms: rollouts, policy-gradient surrogates and
baselines, the replay buffer and Q-learning pieces, recurrent agents, RL^2 trials and PPO, and the
classic bandit and tabular-MDP strategies."""
