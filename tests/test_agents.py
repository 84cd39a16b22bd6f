"""agents/: rl-zoo3 configs, lin_ schedules, policy_kwargs parsing, --set validation, factory."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from coordrl.agents.config import (
    ConfigError,
    apply_overrides,
    linear_schedule,
    load_config,
    parse_overrides,
    parse_policy_kwargs,
    resolve_hyperparams,
    valid_keys,
)
from coordrl.agents.factory import (
    TensorRolloutBuffer,
    build_model,
    check_extractor_kwargs,
    extractor_class,
    torch_threads,
)
from coordrl.envs import make_env
from coordrl.extractors import CoordNatureCNN, MinAtarCNN
from coordrl.layers import CoordConv2d
from coordrl.variant import Variant

PIXEL = "coordrl/PointAtDot-v0"


def test_configs_are_rl_zoo3_atari_hyperparameters():
    ppo = load_config("ppo")
    assert (ppo.n_envs, ppo.n_timesteps, ppo.policy) == (8, 10_000_000, "CnnPolicy")
    assert ppo.hyperparams == {
        "n_steps": 128,
        "n_epochs": 4,
        "batch_size": 256,
        "learning_rate": "lin_2.5e-4",
        "clip_range": "lin_0.1",
        "vf_coef": 0.5,
        "ent_coef": 0.01,
    }
    a2c = load_config("a2c")
    assert (a2c.n_envs, a2c.n_timesteps) == (16, 10_000_000)
    kwargs = resolve_hyperparams("a2c", a2c.hyperparams)
    assert kwargs["ent_coef"] == 0.01 and kwargs["vf_coef"] == 0.25
    assert kwargs["policy_kwargs"] == {
        "optimizer_class": RMSpropTFLike,
        "optimizer_kwargs": {"eps": 1e-5},
    }
    dqn = load_config("dqn")
    assert dqn.n_timesteps == 10_000_000
    assert dqn.hyperparams == {
        "buffer_size": 100_000,
        "learning_rate": 1e-4,
        "batch_size": 32,
        "learning_starts": 100_000,
        "target_update_interval": 1000,
        "train_freq": 4,
        "gradient_steps": 1,
        "exploration_fraction": 0.1,
        "exploration_final_eps": 0.01,
        "optimize_memory_usage": False,
    }


def test_lin_schedules_decay_linearly_to_zero_like_rl_zoo3():
    kwargs = resolve_hyperparams("ppo", load_config("ppo").hyperparams)
    lr, clip = kwargs["learning_rate"], kwargs["clip_range"]
    # progress_remaining goes from 1 (start) to 0 (end); value = progress_remaining * X
    assert [lr(p) for p in (1.0, 0.5, 0.0)] == pytest.approx([2.5e-4, 1.25e-4, 0.0])
    assert [clip(p) for p in (1.0, 0.25, 0.0)] == pytest.approx([0.1, 0.025, 0.0])
    assert linear_schedule(3.0)(0.1) == pytest.approx(0.3)


def test_overrides_parse_yaml_values_and_numbers():
    assert parse_overrides(
        ["n_steps=64", "learning_rate=1e-4", "gamma=0.9", "use_sde=false", "clip_range=lin_0.2"]
    ) == {
        "n_steps": 64,
        "learning_rate": 1e-4,
        "gamma": 0.9,
        "use_sde": False,
        "clip_range": "lin_0.2",
    }
    cfg = apply_overrides(load_config("ppo"), parse_overrides(["n_envs=4", "n_steps=1e3"]))
    assert cfg.n_envs == 4 and cfg.hyperparams["n_steps"] == 1000
    assert cfg.hyperparams["learning_rate"] == "lin_2.5e-4"  # untouched keys kept


@pytest.mark.parametrize(
    "override, message",
    [
        ("foo=1", "unknown hyperparameter 'foo' for PPO; valid keys: batch_size, clip_range"),
        ("buffer_size=10", "unknown hyperparameter 'buffer_size' for PPO"),
        ("n_steps=abc", "n_steps must be an integer"),
        ("gamma=[1]", "gamma must be a number"),
        ("learning_rate=lin_x", "neither a number nor a linear schedule"),
        ("seed=1", "use --seed"),
        ("n_envs=0", "n_envs must be a positive integer"),
        ("policy=MlpPolicy", "policy 'MlpPolicy' is not supported"),
        ("novalue", "expected KEY=VALUE"),
    ],
)
def test_bad_overrides_are_rejected_with_a_clear_message(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        apply_overrides(load_config("ppo"), parse_overrides([override]))


def test_valid_keys_follow_the_algorithm_signature():
    assert "buffer_size" in valid_keys("dqn") and "buffer_size" not in valid_keys("ppo")
    assert {"n_envs", "n_timesteps", "policy"} <= set(valid_keys("a2c"))
    assert "seed" not in valid_keys("ppo") and "env" not in valid_keys("ppo")
    with pytest.raises(ConfigError, match="unknown algorithm 'sac'"):
        load_config("sac")


def test_policy_kwargs_strings_are_parsed_without_eval():
    assert parse_policy_kwargs(
        "dict(activation_fn=nn.ReLU, net_arch=dict(pi=[64], vf=[64]), ortho_init=False, x=-2)"
    ) == {
        "activation_fn": nn.ReLU,
        "net_arch": {"pi": [64], "vf": [64]},
        "ortho_init": False,
        "x": -2,
    }
    assert parse_policy_kwargs({"optimizer_class": "th.optim.Adam"}) == {
        "optimizer_class": th.optim.Adam
    }
    for code in (
        "__import__('os').system('true')",
        "dict(a=open('x'))",
        "dict(a=os.sep)",
        "[1, 2]",
        "dict(**{'a': 1})",
    ):
        with pytest.raises(ConfigError):
            parse_policy_kwargs(code)


@pytest.mark.parametrize(
    "algo, value, match",
    [
        ("ppo", "{bogus: 1}", "unknown key 'bogus' for PPO's CnnPolicy; valid keys: activation_fn"),
        ("ppo", "dict(net_arch=-1)", "net_arch must be a list of positive layer sizes"),
        ("ppo", "dict(net_arch=[64, 0])", "net_arch must be"),
        ("ppo", "dict(net_arch=dict(pi=[64], qf=[64]))", "dict(pi=[...], vf=[...])"),
        ("dqn", "dict(net_arch=dict(pi=[64]))", "net_arch must be a list of positive layer sizes"),
        ("dqn", "dict(ortho_init=False)", "unknown key 'ortho_init' for DQN's CnnPolicy"),
        ("ppo", "dict(ortho_init=1)", "ortho_init must be true or false, got 1"),
        ("a2c", "dict(activation_fn='relu')", "activation_fn must be a torch Module class"),
        ("ppo", "dict(optimizer_kwargs=5)", "optimizer_kwargs must be a mapping"),
        ("ppo", "dict(optimizer_kwargs=dict(epz=1))", "unknown key 'epz' for Adam"),
        ("ppo", "dict(optimizer_kwargs=dict(lr=1))", "use learning_rate"),
        ("ppo", "dict(features_extractor_class=nn.ReLU)", "cannot be set: coordrl always uses"),
    ],
)
def test_bad_policy_kwargs_are_rejected_when_read(algo, value, match):
    """Checked against the SB3 policy's constructor when the config is read, not when built."""
    with pytest.raises(ConfigError, match=re.escape(match)):
        apply_overrides(load_config(algo), parse_overrides([f"policy_kwargs={value}"]))


def test_good_policy_kwargs_pass():
    good = "dict(net_arch=dict(pi=[64], vf=[32]), activation_fn=nn.ReLU, ortho_init=False)"
    cfg = apply_overrides(load_config("ppo"), parse_overrides([f"policy_kwargs={good}"]))
    assert resolve_hyperparams("ppo", cfg.hyperparams)["policy_kwargs"]["net_arch"]["vf"] == [32]
    for algo in ("a2c", "dqn"):  # the shipped optimizer settings
        for family in ("atari", "minatar"):
            resolve_hyperparams(algo, load_config(algo, family=family).hyperparams)


@pytest.mark.parametrize(
    "kwargs, family, match",
    [
        ("dict(features_dimm=3)", "atari", "unknown key 'features_dimm' for CoordNatureCNN"),
        ("dict(features_dim=0)", "minatar", "features_dim must be a positive integer"),
        ("dict(features_dim='x')", "atari", "features_dim must be an integer"),
        ("dict(channels_last=True)", "atari", "cannot set channels_last"),
        ("dict(with_r=True)", "pixel", "cannot set with_r: use --with-r"),
    ],
)
def test_bad_extractor_kwargs_are_rejected_for_the_family(kwargs, family, match):
    hp = {"policy_kwargs": f"dict(features_extractor_kwargs={kwargs})"}
    with pytest.raises(ConfigError, match=re.escape(match)):
        check_extractor_kwargs(hp, family, "--set")
    check_extractor_kwargs(
        {"policy_kwargs": "dict(features_extractor_kwargs=dict(features_dim=64))"}, family
    )


@pytest.fixture(scope="module")
def pixel_env():
    env, _ = make_env(PIXEL, 2, seed=0)
    yield env
    env.close()


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_build_model_uses_coord_nature_cnn_for_both_variants(algo, pixel_env):
    hp = dict(load_config(algo).hyperparams)
    if algo == "dqn":
        hp["buffer_size"] = 1000
    conv = build_model(algo, pixel_env, hp, Variant(), seed=0, device="cpu")
    coord = build_model(algo, pixel_env, hp, Variant("all", with_r=True), seed=0, device="cpu")
    for model, n_coord in ((conv, 0), (coord, 3)):
        extractors = [m for m in model.policy.modules() if isinstance(m, CoordNatureCNN)]
        assert extractors and all(e.channels_last for e in extractors)  # CPU: channels-last
        layers = [m for m in extractors[0].modules() if isinstance(m, CoordConv2d)]
        assert len(layers) == n_coord and all(layer.with_r for layer in layers)
    if algo in ("ppo", "a2c"):
        assert isinstance(conv.rollout_buffer, TensorRolloutBuffer)
        assert conv.rollout_buffer.observations.dtype == np.uint8
    if algo == "a2c":
        assert isinstance(conv.policy.optimizer, RMSpropTFLike)
    # The conv arm is SB3's CnnPolicy network (NatureCNN + linear heads), parameter for parameter.
    stock = type(conv)(
        "CnnPolicy",
        pixel_env,
        seed=0,
        device="cpu",
        **({"buffer_size": 1000} if algo == "dqn" else {}),
    )
    shapes = {k: v.shape for k, v in conv.policy.state_dict().items()}
    assert shapes == {k: v.shape for k, v in stock.policy.state_dict().items()}
    assert any(type(m) is NatureCNN for m in stock.policy.modules())


def test_build_model_refuses_to_swap_the_extractor(pixel_env):
    hp = {"policy_kwargs": "dict(features_extractor_kwargs=dict(with_r=True))"}
    with pytest.raises(ConfigError, match="--with-r"):
        build_model("ppo", pixel_env, hp, Variant(), seed=0, device="cpu")


def test_tensor_rollout_buffer_yields_the_same_minibatches_as_sb3():
    obs_space = spaces.Box(0, 255, (1, 36, 36), np.uint8)
    act_space = spaces.Discrete(4)
    bufs = [
        cls(8, obs_space, act_space, device="cpu", n_envs=2)
        for cls in (RolloutBuffer, TensorRolloutBuffer)
    ]
    rng = np.random.default_rng(0)
    for _ in range(8):
        step = (
            rng.integers(0, 255, (2, 1, 36, 36), dtype=np.uint8),
            rng.integers(0, 4, (2, 1)),
            rng.normal(size=2).astype(np.float32),
            np.zeros(2, np.float32),
        )
        value, log_prob = th.randn(2), th.randn(2)
        for buf in bufs:
            buf.add(*step, value, log_prob)
    for buf in bufs:
        buf.compute_returns_and_advantage(th.zeros(2), np.zeros(2))
    batches = []
    for buf in bufs:
        np.random.seed(0)
        batches.append(list(buf.get(batch_size=5)))
    assert len(batches[0]) == len(batches[1]) == 4
    for ref, ours in zip(*batches, strict=True):
        assert ours.observations.dtype == th.uint8
        for a, b in zip(ref, ours, strict=True):
            assert th.equal(a, b)


def test_ppo_trains_and_saves_with_the_factory(pixel_env, tmp_path):
    hp = {"n_steps": 16, "batch_size": 32, "n_epochs": 1, "learning_rate": "lin_1e-3"}
    model = build_model("ppo", pixel_env, hp, Variant("first"), seed=0, device="cpu")
    model.learn(64)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")  # rebuilds the policy from policy_kwargs
    obs = pixel_env.reset()
    th.testing.assert_close(
        loaded.policy.predict_values(loaded.policy.obs_to_tensor(obs)[0]),
        model.policy.predict_values(model.policy.obs_to_tensor(obs)[0]),
    )


def test_load_config_picks_the_family_file():
    for algo in ("ppo", "a2c", "dqn"):
        assert load_config(algo, family="atari") == load_config(algo)  # the default
        assert load_config(algo, family="pixel") == load_config(algo)  # today's behaviour
    ppo = load_config("ppo", family="minatar")
    assert (ppo.n_envs, ppo.n_timesteps) == (8, 5_000_000)
    dqn = load_config("dqn", family="minatar")  # the MinAtar paper's DQN (examples/dqn.py)
    assert dqn.hyperparams["learning_starts"] == 5000 and dqn.hyperparams["train_freq"] == 1
    assert dqn.hyperparams["exploration_final_eps"] == 0.1
    optimizer = resolve_hyperparams("dqn", dqn.hyperparams)["policy_kwargs"]
    assert optimizer["optimizer_class"] is th.optim.RMSprop
    assert optimizer["optimizer_kwargs"] == dict(alpha=0.95, momentum=0.95, centered=True, eps=0.01)
    with pytest.raises(ConfigError, match="unknown environment family 'mujoco'"):
        load_config("ppo", family="mujoco")


def test_build_model_passes_coord_init_and_picks_the_family_network(pixel_env):
    hp = {"n_steps": 16, "batch_size": 32, "n_epochs": 1}
    model = build_model("ppo", pixel_env, hp, Variant.from_name("coordconv-all-zero"), 0, "cpu")
    layers = [m for m in model.policy.modules() if isinstance(m, CoordConv2d)]
    assert len(layers) == 3 and all(th.count_nonzero(m.coord_weight) == 0 for m in layers)
    assert model.policy.features_extractor.coord_init == "zero"
    assert extractor_class("minatar") is MinAtarCNN and extractor_class("pixel") is CoordNatureCNN
    with pytest.raises(ConfigError, match="environment family"):
        build_model("ppo", pixel_env, hp, Variant(), 0, "cpu", family="mujoco")
    with pytest.raises(ConfigError, match="coord_init"):
        bad = {"policy_kwargs": "dict(features_extractor_kwargs=dict(coord_init='zero'))"}
        build_model("ppo", pixel_env, bad, Variant(), 0, "cpu")
    assert torch_threads("minatar", "cpu") == 1 and torch_threads("atari", "cpu") is None
