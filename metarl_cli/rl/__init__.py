"""Reinforcement-learning mechanisms shared by the algorithms: rollouts and policy-gradient losses."""
