"""Fixed reference scores of the five MinAtar games, for normalising aggregates across games:
``(score - random) / (reference - random)``, so 0 = a uniformly random policy and 1 = the MinAtar
paper's DQN after 5M frames. Fixed, not taken from the runs present, so adding runs never changes
earlier normalised numbers.

* ``random``: measured here, 2026-12-03, ``python scripts/random_scores.py --episodes 1000``
  (uniform random actions over each id's action set, MinAtar 1.0.15 defaults: sticky actions 0.1,
  difficulty ramping; full episodes on coordrl's evaluation env, seed 0; standard errors 0.01-0.11).
  The script then kept the first 1000 episodes to end; since 2026-12-04 it spreads them evenly over
  its 8 envs, as SB3's ``evaluate_policy`` does. Rerun that way (2026-12-04), every value moved by
  less than one standard error (at most 0.032, Space Invaders v1), so the table is kept as measured.
* ``reference``: DQN at 5M frames in the MinAtar paper (Young & Tian 2019, arXiv:1903.03176 v2),
  read off its learning-curve figure (``img/learning_curves.gif`` of kenjyoung/MinAtar at commit
  4241f24685622cfb52f843cab9bbcf385a53484a; 30 seeds, moving average of 100 training episodes, all
  6 actions, sticky actions 0.1). Digitised from the plot: about ±0.3 on Asterix, Breakout and
  Seaquest, ±1-3 on Freeway and Space Invaders. The paper plays the full action set (the ``-v0``
  ids); coordrl's study uses the minimal sets (``-v1``), so a normalised score of 1 means "as good
  as the paper's DQN", not "the same policy".

MinAtar frames are agent steps (no frame skip).
"""

from __future__ import annotations

__all__ = ["MINATAR_SCORES", "has_minatar_scores", "minatar_normalized"]

_REFERENCE = {
    "Asterix": 17.2,
    "Breakout": 10.0,
    "Freeway": 50.2,
    "Seaquest": 20.3,
    "SpaceInvaders": 43.3,
}
_RANDOM = {
    "Asterix": (0.508, 0.483),
    "Breakout": (0.514, 0.394),
    "Freeway": (0.139, 0.386),
    "Seaquest": (0.094, 0.094),
    "SpaceInvaders": (2.822, 4.068),
}

#: ``{"MinAtar/Breakout-v1": (random, reference), ...}`` for the v0 and v1 ids.
MINATAR_SCORES: dict[str, tuple[float, float]] = {
    f"MinAtar/{game}-v{v}": (_RANDOM[game][v], _REFERENCE[game])
    for game in _REFERENCE
    for v in (0, 1)
}


def has_minatar_scores(env_id: str) -> bool:
    """Whether ``env_id`` (``MinAtar/<Game>-v0`` or ``-v1``) has reference scores."""
    return env_id in MINATAR_SCORES


def minatar_normalized(env_id: str, score: float) -> float:
    """``(score - random) / (reference - random)`` (0 = random play, 1 = the paper's DQN at 5M).

    :raises KeyError: not a MinAtar id (names it)
    """
    try:
        random, reference = MINATAR_SCORES[env_id]
    except KeyError:
        raise KeyError(f"no MinAtar reference scores for {env_id!r}") from None
    return (score - random) / (reference - random)
