"""Reinforcement-learning mechanisms shared by the algorithms: rollouts, policy-gradient surrogates and
baselines, the replay buffer and Q-learning pieces, MAML's policy-gradient and TD learners, recurrent
agents, RL^2 trials and PPO, and the classic bandit and tabular-MDP strategies."""
