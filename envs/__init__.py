"""Environment factories: Atari (native ale-py or SB3 backend) and gymnasium ids.

Importing ``envs`` also registers coordrl's own gymnasium envs (``coordrl/PointAtDot-v0``).
"""

from coordrl.envs import pixel  # noqa: F401  (registers coordrl/PointAtDot-v0)
from coordrl.envs.atari import canonical_game, make_atari_vec_env
from coordrl.envs.errors import UnknownEnvError
from coordrl.envs.factory import EnvSpec, make_env, resolve_env

__all__ = [
    "EnvSpec",
    "UnknownEnvError",
    "canonical_game",
    "make_atari_vec_env",
    "make_env",
    "resolve_env",
]
