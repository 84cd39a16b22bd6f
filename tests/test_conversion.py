"""to_coordconv (any network), CoordConvExtractor (any SB3 extractor), coord_init, Variant names."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

from coordrl import CoordConv2d, CoordConvExtractor, CoordNatureCNN, MinAtarCNN, to_coordconv
from coordrl.conversion import conv_layers, init_coord_weights
from coordrl.coord_usage import coord_weight_ratios
from coordrl.layers import AddCoords
from coordrl.variant import Variant

th.set_num_threads(1)

TESTS_DIR = Path(__file__).resolve().parent
F64 = dict(rtol=1e-10, atol=1e-12)


def _net(dtype: th.dtype = th.float64) -> nn.Sequential:
    """Conv layers with every hyperparameter CoordConv2d must carry over, nested one level."""
    th.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2, padding_mode="reflect", dtype=dtype),
        nn.ReLU(),
        nn.Sequential(
            nn.Conv2d(8, 6, (3, 2), padding=(2, 1), dilation=(2, 1), bias=False, dtype=dtype),
            nn.Tanh(),
            nn.Conv2d(6, 4, 3, padding="same", padding_mode="circular", dtype=dtype),
        ),
        nn.Flatten(),
    )


HYPERPARAMS = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "padding_mode",
)


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("with_r", [False, True])
def test_zero_coordinate_weights_compute_the_original_function(with_r: bool) -> None:
    original = _net()
    converted = to_coordconv(copy.deepcopy(original), "all", with_r=with_r, coord_init="zero")
    pairs = list(zip(conv_layers(original), conv_layers(converted), strict=True))
    assert len(pairs) == 3
    for (name, old), (new_name, new) in pairs:
        assert name == new_name and type(new) is CoordConv2d and new.with_r == with_r
        for attr in HYPERPARAMS:
            assert getattr(new, attr) == getattr(old, attr), (name, attr)
        assert (new.bias is None) == (old.bias is None)
        assert new.weight.dtype == th.float64 and new.weight.device == old.weight.device
        assert th.equal(new.content_weight, old.weight)
        assert th.count_nonzero(new.coord_weight) == 0
        if old.bias is not None:
            assert th.equal(new.bias, old.bias)
    x = th.randn(2, 3, 13, 11, dtype=th.float64)
    th.testing.assert_close(converted(x), original(x), **F64)


def test_converted_layers_equal_the_naive_concat_form() -> None:
    """Nonzero coordinate weights: each layer equals Conv2d(in + 2 (+1)) on AddCoords(x)."""
    converted = to_coordconv(_net(), "all", with_r=True)
    x = th.randn(2, 3, 13, 11, dtype=th.float64)
    h = x
    for module in [converted[0], converted[1], converted[2][0], converted[2][1], converted[2][2]]:
        if isinstance(module, CoordConv2d):
            assert th.count_nonzero(module.coord_weight) > 0
            reference = nn.Conv2d(
                module.in_channels + 3,
                module.out_channels,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
                dtype=th.float64,
            )
            reference.load_state_dict(module.state_dict())
            th.testing.assert_close(module(h), reference(AddCoords(with_r=True)(h)), **F64)
            th.testing.assert_close(module(h), module.forward_naive(h), **F64)
        h = module(h)


def test_memory_format_requires_grad_and_mode_are_kept() -> None:
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Conv2d(4, 4, 3)).to(memory_format=th.channels_last)
    net[1].weight.requires_grad_(False)
    net.eval()
    to_coordconv(net, "all")
    assert net[0].weight.is_contiguous(memory_format=th.channels_last)
    assert net[0].weight.requires_grad and not net[1].weight.requires_grad
    assert not net[0].training and not net[1].training


# ----------------------------------------------------------------------------- layer selection


@pytest.mark.parametrize(
    ("layers", "expected"),
    [("first", [0]), ("all", [0, 1, 2]), ("none", []), (2, [2]), ([0, 2], [0, 2]), ("1,2", [1, 2])],
)
def test_layers_select_convs_in_modules_order(layers, expected: list[int]) -> None:
    net = to_coordconv(_net(), layers)
    assert [isinstance(m, CoordConv2d) for _, m in conv_layers(net)] == [
        i in expected for i in range(3)
    ]


def test_bad_layers_and_coord_init_are_value_errors() -> None:
    with pytest.raises(ValueError, match="out of range"):
        to_coordconv(_net(), [3])
    with pytest.raises(ValueError, match="coord_layers"):
        to_coordconv(_net(), "second")
    with pytest.raises(ValueError, match="coord_init"):
        to_coordconv(_net(), coord_init="ones")
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        to_coordconv(nn.Linear(3, 3))
    assert isinstance(to_coordconv(nn.Linear(3, 3), "none"), nn.Linear)


def test_unconvertible_conv_is_an_error_naming_it_and_nothing_changes() -> None:
    net = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2)))
    with pytest.raises(ValueError, match=r"'1\.1'.*groups=2"):
        to_coordconv(net, "all")
    assert type(net[0]) is nn.Conv2d  # checked before anything was replaced
    to_coordconv(net, "first")  # the other layer converts fine
    assert isinstance(net[0], CoordConv2d)

    class StandardisedConv(nn.Conv2d):
        def forward(self, x: th.Tensor) -> th.Tensor:
            w = (self.weight - self.weight.mean()) / self.weight.std()
            return self._conv_forward(x, w, self.bias)

    with pytest.raises(ValueError, match="its own forward"):
        to_coordconv(nn.Sequential(StandardisedConv(1, 2, 3)))
    with pytest.raises(ValueError, match="lazy"):
        to_coordconv(nn.Sequential(nn.LazyConv2d(4, 3)))


def test_other_convs_existing_coordconv_shared_and_root_layers() -> None:
    shared = nn.Conv2d(2, 2, 3, padding=1)
    existing = CoordConv2d(2, 2, 1, with_r=True)
    net = nn.Sequential(
        nn.Conv1d(2, 2, 3), nn.Conv3d(2, 2, 1), existing, shared, nn.Sequential(shared)
    )
    assert [name for name, _ in conv_layers(net)] == ["2", "3"]  # 1-D/3-D convs do not count
    to_coordconv(net, "all")
    assert type(net[0]) is nn.Conv1d and type(net[1]) is nn.Conv3d
    assert net[2] is existing and existing.with_r  # not converted again
    assert isinstance(net[3], CoordConv2d) and net[4][0] is net[3]  # still shared
    before = {k: v.clone() for k, v in net.state_dict().items()}
    to_coordconv(net, "all")  # idempotent
    assert all(th.equal(v, net.state_dict()[k]) for k, v in before.items())
    root = nn.Conv2d(1, 3, 3)
    new_root = to_coordconv(root, coord_init="zero")
    assert isinstance(new_root, CoordConv2d) and th.equal(new_root.content_weight, root.weight)


# ----------------------------------------------------------------------------- coord_init


def test_default_coord_init_is_that_of_the_original_layer() -> None:
    th.manual_seed(1)
    conv = nn.Conv2d(32, 64, 4)
    bound = 1 / np.sqrt(32 * 16)  # nn.Conv2d's kaiming_uniform_(a=sqrt(5)) bound, fan_in 32*4*4
    new = to_coordconv(conv, coord_init="default")
    coord = new.coord_weight
    assert coord.abs().max() <= bound and coord.abs().max() > 0.9 * bound
    assert coord.abs().mean().item() == pytest.approx(bound / 2, rel=0.1)  # uniform: mean |w| = b/2
    assert coord_weight_ratios(new)[""] == pytest.approx(1.0, abs=0.1)
    assert init_coord_weights(new, "zero") == 1 and th.count_nonzero(new.coord_weight) == 0
    assert coord_weight_ratios(new)[""] == 0.0


# ----------------------------------------------------------------------------- extractors

ATARI = spaces.Box(0, 255, (4, 84, 84), np.uint8)


def test_coord_nature_cnn_is_the_converted_nature_cnn() -> None:
    th.manual_seed(0)
    plain = NatureCNN(ATARI)
    th.manual_seed(0)
    ours = CoordNatureCNN(ATARI, coord_layers="all", coord_init="zero")
    assert set(ours.state_dict()) == set(plain.state_dict())
    x = th.rand(2, 4, 84, 84)
    th.testing.assert_close(ours(x), plain(x))  # zero coordinate weights: NatureCNN's function
    th.manual_seed(0)  # the base is built first, from the same seed: NatureCNN's weights
    generic = CoordConvExtractor(ATARI, NatureCNN, coord_layers="all", coord_init="zero")
    th.testing.assert_close(generic(x), plain(x))
    assert set(coord_weight_ratios(generic)) == {"base.cnn.0", "base.cnn.2", "base.cnn.4"}


class TinyCNN(BaseFeaturesExtractor):
    """A user's own extractor: two convs (one grouped, left alone) and a linear layer."""

    def __init__(self, observation_space: gym.Space, features_dim: int = 16) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        self.body = nn.Sequential(
            nn.Conv2d(c, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2), nn.ReLU()
        )
        with th.no_grad():
            n = self.body(th.zeros(1, c, h, w)).numel()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n, features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.head(self.body(observations))


class DotEnv(gym.Env):
    """3x3 dot on a 36x36 canvas; reward 1 for saying which half it is in; 8 steps."""

    observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)  # channel-last: SB3 transposes
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._draw(), {}

    def _draw(self) -> np.ndarray:
        self._col = int(self.np_random.integers(0, 33))
        img = np.zeros((36, 36, 1), np.uint8)
        img[10:13, self._col : self._col + 3] = 255
        return img

    def step(self, action):
        reward = float(int(action) == int(self._col >= 17))
        self._t += 1
        return self._draw(), reward, False, self._t >= 8, {}


def _extractor(model) -> CoordConvExtractor:
    net = model.policy.q_net if isinstance(model, DQN) else model.policy
    return net.features_extractor


def _model(algo: str, base: str, coord_init: str):
    base_class, base_kwargs = (
        (NatureCNN, dict(features_dim=32)) if base == "nature" else (TinyCNN, {})
    )
    policy_kwargs = dict(
        features_extractor_class=CoordConvExtractor,
        features_extractor_kwargs=dict(
            base_class=base_class,
            base_kwargs=base_kwargs,
            coord_layers="first",
            with_r=True,
            coord_init=coord_init,
        ),
        net_arch=[],
    )
    common = dict(policy_kwargs=policy_kwargs, seed=0, device="cpu")
    if algo == "PPO":
        return PPO("CnnPolicy", DotEnv(), n_steps=32, batch_size=32, n_epochs=2, **common)
    if algo == "A2C":
        return A2C("CnnPolicy", DotEnv(), n_steps=8, **common)
    return DQN(
        "CnnPolicy",
        DotEnv(),
        buffer_size=200,
        learning_starts=32,
        train_freq=4,
        batch_size=16,
        target_update_interval=32,
        **common,
    )


LOAD_AND_PREDICT = """
import json, sys
sys.path.insert(0, sys.argv[3])
import numpy as np, torch as th
from stable_baselines3 import A2C, DQN, PPO
th.set_num_threads(1)
algos = {"A2C": A2C, "PPO": PPO, "DQN": DQN}
obs = np.load(sys.argv[1])
out = {}
for key, path in json.loads(sys.argv[2]).items():
    model = algos[key.split("-")[0]].load(path, device="cpu")
    net = model.policy.q_net if key.startswith("DQN") else model.policy
    ext = net.features_extractor
    coord = ext.base.get_submodule(sys.argv[4]).coord_weight.detach()
    out[key] = {
        "actions": model.predict(obs, deterministic=True)[0].tolist(),
        "classes": [type(ext).__name__, type(ext.base).__name__],
        "coord_abs_sum": float(coord.abs().sum()),
    }
print(json.dumps(out))
"""


@pytest.mark.parametrize("base", ["nature", "tiny"])
def test_sb3_agents_with_converted_extractors_train_save_and_load(base: str, tmp_path) -> None:
    obs = np.stack([DotEnv().reset(seed=i)[0] for i in range(16)])
    np.save(tmp_path / "obs.npy", obs)
    first_conv = "cnn.0" if base == "nature" else "body.0"
    expected, paths = {}, {}
    for algo, coord_init in [("A2C", "zero"), ("PPO", "zero"), ("DQN", "default")]:
        model = _model(algo, base, coord_init)
        ext = _extractor(model)
        assert isinstance(ext, CoordConvExtractor)
        layer = ext.base.get_submodule(first_conv)
        assert isinstance(layer, CoordConv2d) and layer.with_r
        if base == "tiny":
            assert type(ext.base.body[2]) is nn.Conv2d  # only the first layer was asked for
        if coord_init == "zero":  # SB3's ortho_init re-drew them; the first forward re-zeroes
            model.predict(obs[:1])
            assert th.count_nonzero(layer.coord_weight) == 0, algo
        model.learn(96)
        # Gradients reached the coordinate weights.
        assert th.count_nonzero(layer.coord_weight) > 0, algo
        key = f"{algo}-{coord_init}"
        expected[key] = {
            "actions": model.predict(obs, deterministic=True)[0].tolist(),
            "classes": ["CoordConvExtractor", "NatureCNN" if base == "nature" else "TinyCNN"],
            "coord_abs_sum": float(layer.coord_weight.detach().abs().sum()),
        }
        paths[key] = str(tmp_path / f"{key}.zip")
        model.save(paths[key])
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_PREDICT,
            str(tmp_path / "obs.npy"),
            json.dumps(paths),
            str(TESTS_DIR),
            first_conv,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, want in expected.items():
        assert loaded[key]["actions"] == want["actions"], key
        assert loaded[key]["classes"] == want["classes"], key
        assert loaded[key]["coord_abs_sum"] == pytest.approx(want["coord_abs_sum"]), key


@pytest.mark.parametrize("cls", [CoordNatureCNN, MinAtarCNN, CoordConvExtractor])
def test_zero_init_survives_ortho_init_but_not_a_loaded_state_dict(cls) -> None:
    space = spaces.Box(0, 255, (4, 10, 10) if cls is MinAtarCNN else (4, 36, 36), np.uint8)
    kwargs = dict(coord_layers="all", coord_init="zero")
    if cls is CoordConvExtractor:
        kwargs["base_class"] = NatureCNN
    ext = cls(space, **kwargs)
    layers = [m for m in ext.modules() if isinstance(m, CoordConv2d)]
    for layer in layers:  # what SB3's ortho_init does after building the extractor
        nn.init.orthogonal_(layer.weight)
    ext(th.zeros(1, *space.shape))
    assert all(th.count_nonzero(layer.coord_weight) == 0 for layer in layers)
    trained = {k: v + 1 for k, v in ext.state_dict().items()}
    fresh = cls(space, **kwargs)
    fresh.load_state_dict(trained)
    fresh(th.zeros(1, *space.shape))
    assert all(th.equal(v, trained[k]) for k, v in fresh.state_dict().items())


# ----------------------------------------------------------------------------- variants


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("conv", Variant()),
        ("coordconv", Variant("first")),
        ("coordconv-r", Variant("first", True)),
        ("coordconv-all", Variant("all")),
        ("coordconv-L0-2-r", Variant("0,2", True)),
        ("coordconv-zero", Variant("first", coord_init="zero")),
        ("coordconv-r-zero", Variant("first", True, "zero")),
        ("coordconv-all-r-zero", Variant("all", True, "zero")),
        ("coordconv-L1-zero", Variant("1", coord_init="zero")),
    ],
)
def test_variant_names_round_trip(name: str, variant: Variant) -> None:
    assert Variant.from_name(name) == variant
    assert variant.name == name
    assert variant.canonical() == variant


def test_variant_zero_suffix_canonicalises_and_rejects_nonsense() -> None:
    assert Variant.from_name("coordconv-L0-1-2-r-zero").canonical().name == "coordconv-all-r-zero"
    assert Variant("none", coord_init="zero").canonical() == Variant()
    for bad in ("conv-zero", "coordconv-zero-r", "coordconv-zeros"):
        with pytest.raises(ValueError, match="unknown variant"):
            Variant.from_name(bad)
    with pytest.raises(ValueError, match="coord_init"):
        Variant(coord_init="ones")
