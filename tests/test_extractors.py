"""CoordNatureCNN as an SB3 features extractor, and the coord-usage diagnostics."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from coordrl import CoordConv2d, CoordNatureCNN
from coordrl.coord_usage import CoordUsageCallback, coord_weight_ratios
from coordrl.variant import parse_coord_layers

th.set_num_threads(1)

ATARI_SPACE = spaces.Box(0, 255, (4, 84, 84), np.uint8)


class DotSideEnv(gym.Env):
    """Tiny image task: a 3x3 dot on a 36x36 canvas; action 0/1 = "dot is in left/right half".

    Reward 1 for the right answer, 0 otherwise; 8 steps per episode. Channel-last uint8 images,
    as a real pixel env gives them (SB3 transposes them for the CNN).
    """

    metadata: dict[str, Any] = {"render_modes": []}
    size = 36

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, (self.size, self.size, 1), np.uint8)
        self.action_space = spaces.Discrete(2)
        self._dot = (0, 0)
        self._t = 0

    def _obs(self) -> np.ndarray:
        img = np.zeros((self.size, self.size, 1), np.uint8)
        i, j = self._dot
        img[i : i + 3, j : j + 3] = 255
        return img

    def _new_dot(self) -> None:
        i, j = self.np_random.integers(0, self.size - 3, size=2)
        self._dot = (int(i), int(j))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._new_dot()
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == int(self._dot[1] + 1 >= self.size // 2))
        self._t += 1
        self._new_dot()
        return self._obs(), reward, False, self._t >= 8, {}


def _policy_kwargs(**extractor_kwargs: Any) -> dict[str, Any]:
    kwargs = dict(coord_layers="all", with_r=True, features_dim=64) | extractor_kwargs
    return dict(
        features_extractor_class=CoordNatureCNN,
        features_extractor_kwargs=kwargs,
        net_arch=[],  # what CnnPolicy uses with NatureCNN
    )


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("space", [ATARI_SPACE, spaces.Box(0, 255, (1, 36, 36), np.uint8)])
def test_none_is_architecturally_nature_cnn(space: spaces.Box) -> None:
    th.manual_seed(0)
    plain = NatureCNN(space, features_dim=256)
    th.manual_seed(0)
    ours = CoordNatureCNN(space, features_dim=256, coord_layers="none")
    assert _shapes(ours) == _shapes(plain)
    assert not any(isinstance(m, CoordConv2d) for m in ours.modules())
    # Same construction order -> same initial weights and same outputs.
    x = th.as_tensor(np.stack([space.sample() for _ in range(2)])).float() / 255
    th.testing.assert_close(ours(x), plain(x))
    assert ours.features_dim == 256


@pytest.mark.parametrize(
    ("coord_layers", "expected"),
    [("first", (0,)), ("all", (0, 1, 2)), ("0,2", (0, 2)), ([1], (1,)), (2, (2,)), ("none", ())],
)
@pytest.mark.parametrize("with_r", [False, True])
def test_coord_layers_get_extra_input_channels(coord_layers, expected, with_r: bool) -> None:
    ext = CoordNatureCNN(ATARI_SPACE, coord_layers=coord_layers, with_r=with_r)
    assert ext.coord_layer_indices == expected
    extra = 3 if with_r else 2
    in_channels = {0: 4, 1: 32, 2: 64}
    for layer, key in enumerate(["cnn.0.weight", "cnn.2.weight", "cnn.4.weight"]):
        want = in_channels[layer] + (extra if layer in expected else 0)
        assert ext.state_dict()[key].shape[1] == want
    plain = _shapes(NatureCNN(ATARI_SPACE))
    assert set(_shapes(ext)) == set(plain)  # same parameter names: checkpoints stay comparable
    out = ext(th.rand(3, 4, 84, 84))
    assert out.shape == (3, 512) and th.all(out >= 0)


@pytest.mark.parametrize("bad", ["second", "0,5", [-1], "", True, 3.5, [0, "x"]])
def test_invalid_coord_layers_raise_value_error(bad) -> None:
    with pytest.raises(ValueError, match="coord_layers"):
        parse_coord_layers(bad)
    with pytest.raises(ValueError, match="coord_layers"):
        CoordNatureCNN(ATARI_SPACE, coord_layers=bad)


def test_parse_coord_layers_normalises() -> None:
    assert parse_coord_layers(" 2, 0,2 ") == (0, 2)
    assert parse_coord_layers("ALL") == (0, 1, 2)
    assert parse_coord_layers(()) == ()


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-1, 1, (8,), np.float32),
        spaces.Discrete(3),
        spaces.Box(0, 1, (4, 84, 84), np.float32),  # not uint8 and not declared normalised
    ],
)
def test_non_image_space_is_a_clear_error(space: gym.Space) -> None:
    with pytest.raises(ValueError, match="image observation space"):
        CoordNatureCNN(space)


def test_normalized_images() -> None:
    space = spaces.Box(0, 1, (1, 36, 36), np.float32)
    CoordNatureCNN(space, normalized_image=True)  # explicit
    # SB3 sets normalized_image=True itself for NatureCNN subclasses when normalize_images=False.
    env = gym.make("CartPole-v1")  # only provides an action space
    env.observation_space = space
    model = PPO("CnnPolicy", env, policy_kwargs=_policy_kwargs() | dict(normalize_images=False))
    assert model.policy.features_extractor.coord_layer_indices == (0, 1, 2)


def test_channels_last_gives_the_same_features() -> None:
    th.manual_seed(0)
    default = CoordNatureCNN(ATARI_SPACE, coord_layers="all", with_r=True)
    fast = CoordNatureCNN(ATARI_SPACE, coord_layers="all", with_r=True, channels_last=True)
    fast.load_state_dict(default.state_dict())
    x = th.rand(4, 4, 84, 84)
    th.testing.assert_close(fast(x), default(x), rtol=1e-4, atol=1e-5)
    # Channels-last weights work too, and their state dict loads into a default extractor.
    fast.to(memory_format=th.channels_last)
    assert fast.cnn[0].weight.is_contiguous(memory_format=th.channels_last)
    th.testing.assert_close(fast(x), default(x), rtol=1e-4, atol=1e-5)
    default.load_state_dict(fast.state_dict())
    th.testing.assert_close(fast(x), default(x), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- SB3 agents

LOAD_AND_PREDICT = """
import json, sys
import numpy as np, torch as th
from stable_baselines3 import A2C, DQN, PPO
th.set_num_threads(1)
algos = {"A2C": A2C, "PPO": PPO, "DQN": DQN}
obs = np.load(sys.argv[1])
out = {}
for name, path in json.loads(sys.argv[2]).items():
    model = algos[name].load(path, device="cpu")
    actions, _ = model.predict(obs, deterministic=True)
    out[name] = {
        "actions": actions.tolist(),
        "extractor": type(model.policy.q_net.features_extractor if name == "DQN"
                          else model.policy.features_extractor).__name__,
    }
print(json.dumps(out))
"""


def _make_model(algo: str, seed: int):
    # PPO's extractor runs channels-last: its weights must save and load like the others.
    policy_kwargs = _policy_kwargs(channels_last=algo == "PPO")
    env_kwargs = dict(policy_kwargs=policy_kwargs, seed=seed, device="cpu")
    if algo == "PPO":
        return PPO("CnnPolicy", DotSideEnv(), n_steps=64, batch_size=32, n_epochs=2, **env_kwargs)
    if algo == "A2C":
        return A2C("CnnPolicy", DotSideEnv(), n_steps=8, **env_kwargs)
    return DQN(
        "CnnPolicy",
        DotSideEnv(),
        buffer_size=500,
        learning_starts=64,
        train_freq=4,
        batch_size=16,
        target_update_interval=50,
        **env_kwargs,
    )


def test_a2c_ppo_dqn_learn_save_and_load_in_fresh_process(tmp_path: Path) -> None:
    env = DotSideEnv()
    env.reset(seed=123)
    obs = np.stack([env.step(0)[0] for _ in range(24)])
    np.save(tmp_path / "obs.npy", obs)

    expected: dict[str, list[int]] = {}
    paths: dict[str, str] = {}
    for algo in ["A2C", "PPO", "DQN"]:
        model = _make_model(algo, seed=0)
        net = model.policy.q_net if algo == "DQN" else model.policy
        extractor = net.features_extractor
        assert isinstance(extractor, CoordNatureCNN)
        before = [
            m.coord_weight.detach().clone()
            for m in extractor.modules()
            if isinstance(m, CoordConv2d)
        ]
        assert len(before) == 3
        model.learn(total_timesteps=256)
        assert model.num_timesteps >= 256
        after = [m.coord_weight.detach() for m in extractor.modules() if isinstance(m, CoordConv2d)]
        # Gradients reached the coordinate weights of every CoordConv layer.
        assert all(not th.equal(a, b) for a, b in zip(after, before, strict=True)), algo
        expected[algo] = model.predict(obs, deterministic=True)[0].tolist()
        paths[algo] = str(tmp_path / f"{algo}.zip")
        model.save(paths[algo])

    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(tmp_path / "obs.npy"), json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    for algo in expected:
        assert loaded[algo]["extractor"] == "CoordNatureCNN"
        assert loaded[algo]["actions"] == expected[algo], algo


# ----------------------------------------------------------------------------- coord usage


def test_coord_weight_ratio_definition() -> None:
    layer = CoordConv2d(3, 4, 3)
    with th.no_grad():
        layer.weight[:, :3] = -2.0
        layer.weight[:, 3:] = 0.5
    ratios = coord_weight_ratios(nn.Sequential(nn.Conv2d(1, 3, 1), layer))
    assert ratios == {"1": pytest.approx(0.25)}
    assert coord_weight_ratios(NatureCNN(ATARI_SPACE)) == {}
    with pytest.raises(TypeError, match="nn.Module"):
        coord_weight_ratios("model.zip")


def test_coord_weight_ratio_is_about_one_at_init() -> None:
    th.manual_seed(0)
    ratios = coord_weight_ratios(CoordNatureCNN(ATARI_SPACE, coord_layers="all"))
    assert set(ratios) == {"cnn.0", "cnn.2", "cnn.4"}
    assert all(0.8 < r < 1.2 for r in ratios.values()), ratios


def test_coord_weight_ratios_of_sb3_models_skip_target_network() -> None:
    dqn = _make_model("DQN", seed=0)
    assert set(coord_weight_ratios(dqn)) == {
        "q_net.features_extractor.cnn.0",
        "q_net.features_extractor.cnn.2",
        "q_net.features_extractor.cnn.4",
    }
    ppo = _make_model("PPO", seed=0)  # shared extractor: each layer once
    assert set(coord_weight_ratios(ppo)) == {
        "features_extractor.cnn.0",
        "features_extractor.cnn.2",
        "features_extractor.cnn.4",
    }


def test_callback_logs_ratios_to_sb3_logger(tmp_path: Path) -> None:
    model = A2C(
        "CnnPolicy",
        DotSideEnv(),
        n_steps=8,
        seed=0,
        device="cpu",
        policy_kwargs=_policy_kwargs(coord_layers="0,2", with_r=False),
    )
    model.set_logger(configure(str(tmp_path), ["csv", "tensorboard"]))
    callback = CoordUsageCallback(log_freq=16)
    model.learn(total_timesteps=64, callback=callback, log_interval=2)
    with open(tmp_path / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keys = {"coordconv/cnn.0_coord_ratio", "coordconv/cnn.4_coord_ratio"}
    assert keys <= set(rows[0]), rows[0].keys()
    values = [float(row[k]) for row in rows for k in keys if row[k]]
    assert values and all(np.isfinite(values)) and all(v > 0 for v in values)
    assert list(tmp_path.glob("events.out.tfevents.*")), "no TensorBoard event file written"
    with pytest.raises(ValueError, match="log_freq"):
        CoordUsageCallback(log_freq=-1)
