"""Build SB3 A2C / PPO / DQN agents from ``configs/<algo>.yaml`` (rl-baselines3-zoo's Atari
hyperparameters) with the CoordNatureCNN features extractor."""

from coordrl.agents.config import ALGOS, AlgoConfig, ConfigError, load_config
from coordrl.agents.factory import build_model

__all__ = ["ALGOS", "AlgoConfig", "ConfigError", "build_model", "load_config"]
