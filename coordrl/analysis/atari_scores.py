"""Random and human reference scores of the 57 Atari games, for human-normalised scores.

Source: DQN Zoo, ``dqn_zoo/atari_data.py`` (``_ATARI_DATA``), Apache License 2.0,
https://github.com/google-deepmind/dqn_zoo/blob/master/dqn_zoo/atari_data.py
(transcribed from commit 359945dcb6f6a04f16e380b210c4f22b57681905). Per DQN Zoo: evaluation
scores (undiscounted returns) averaged over at least 3 episodes, each episode starting after
1-30 uniformly random no-ops, episodes capped at 108,000 frames (30 minutes); "random" picks
actions uniformly at random, "human" is a professional human game tester.

The table below is DQN Zoo's, keyed by its snake_case names so that it can be diffed against
the source line by line; :data:`ATARI_SCORES` re-keys it by coordrl's canonical CamelCase
game names (ale-py's ``rom_id_to_name``: ``ms_pacman`` -> ``MsPacman``).

human-normalised score = (score - random) / (human - random): 0 is random play, 1 is human.
"""

from __future__ import annotations

import re

# (random, human), transcribed exactly from dqn_zoo/atari_data.py.
_DQN_ZOO_ATARI_DATA: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    # DQN Zoo notes that the random score on Video Pinball is sometimes greater than the
    # human score under other evaluation methods.
    "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}


def _camel(snake: str) -> str:
    # Same rule as ale_py.registration.rom_id_to_name (not imported: compare must not need ALE).
    return snake.title().replace("_", "")


#: ``{"MsPacman": (random, human), ...}`` for the 57 games.
ATARI_SCORES: dict[str, tuple[float, float]] = {
    _camel(k): v for k, v in _DQN_ZOO_ATARI_DATA.items()
}

_BY_KEY = {re.sub(r"[^a-z0-9]", "", k.lower()): k for k in ATARI_SCORES}


def _lookup_key(game: str) -> str | None:
    # Accept "MsPacman", "ms_pacman", "mspacman"; ignore an "ALE/" prefix and a "-v5" suffix.
    name = re.sub(r"^ALE/|(NoFrameskip)?-v\d+$", "", game)
    return _BY_KEY.get(re.sub(r"[^a-z0-9]", "", name.lower()))


def has_reference_scores(game: str) -> bool:
    """Whether ``game`` is one of the 57 games with random/human reference scores."""
    return _lookup_key(game) is not None


def reference_scores(game: str) -> tuple[float, float]:
    """``(random, human)`` of ``game``; raises ``KeyError`` naming the game if it has none."""
    key = _lookup_key(game)
    if key is None:
        raise KeyError(
            f"no random/human reference scores for {game!r}: the table covers the 57 Atari "
            "games of DQN Zoo (e.g. 'Pong', 'MsPacman'); use min-max normalisation instead"
        )
    return ATARI_SCORES[key]


def human_normalized(game: str, score: float) -> float:
    """``(score - random) / (human - random)`` for ``game`` (0 = random play, 1 = human).

    :param game: canonical game name (``MsPacman``; snake_case and ALE ids also accepted).
    :param score: raw (unclipped) game score.
    """
    random, human = reference_scores(game)
    return (score - random) / (human - random)
