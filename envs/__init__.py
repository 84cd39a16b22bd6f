"""Environment factories: Atari (native ale-py or SB3 backend), MinAtar and gymnasium ids.

Importing ``coordrl.envs`` registers nothing with gymnasium; :func:`register_envs` registers
coordrl's own ids (``coordrl/PointAtDot-v0``) and MinAtar's (``MinAtar/Breakout-v1`` ...), and the
factories (:func:`resolve_env`, :func:`make_env`) call it themselves.
"""

from coordrl.envs.atari import canonical_game, make_atari_vec_env
from coordrl.envs.errors import UnknownEnvError
from coordrl.envs.factory import ENV_FAMILIES, EnvSpec, make_env, register_envs, resolve_env

__all__ = [
    "ENV_FAMILIES",
    "EnvSpec",
    "UnknownEnvError",
    "canonical_game",
    "make_atari_vec_env",
    "make_env",
    "register_envs",
    "resolve_env",
]
