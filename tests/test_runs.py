import json
import os
import stat

import pytest

from coordrl import runs
from coordrl.runs import CorruptRunError, RunResult
from coordrl.variant import Variant


@pytest.mark.parametrize(
    "name, layers, with_r",
    [
        ("conv", "none", False),
        ("coordconv", "first", False),
        ("coordconv-all", "all", False),
        ("coordconv-r", "first", True),
        ("coordconv-all-r", "all", True),
        ("coordconv-L0-2", "0,2", False),
        ("coordconv-L1-r", "1", True),
    ],
)
def test_variant_names_round_trip(name: str, layers: str, with_r: bool) -> None:
    v = Variant.from_name(name)
    assert (v.coord_layers, v.with_r) == (layers, with_r)
    assert v.name == name


@pytest.mark.parametrize("bad", ["", "coord", "coordconv-first", "conv-r", "coordconv-Lx"])
def test_unknown_variant_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        Variant.from_name(bad)


def test_run_name_sanitises_env_ids() -> None:
    assert runs.run_name("Pong", "ppo", "coordconv", 3) == "Pong_ppo_coordconv_s3"
    assert runs.run_name("coordrl/PointAtDot-v0", "dqn", "conv", 0) == (
        "coordrl-PointAtDot-v0_dqn_conv_s0"
    )


def _result(**kw) -> RunResult:
    base = dict(
        game="Pong",
        env_id="ALE/Pong-v5",
        is_atari=True,
        algo="ppo",
        variant="conv",
        seed=0,
        timesteps=1000,
        steps_done=1000,
        final_returns=[-21.0, -20.0],
        curve_steps=[500, 1000],
        curve_returns=[[-21.0], [-20.0, -19.0]],
    )
    base.update(kw)
    return RunResult(**base)


def test_result_round_trip_and_status(tmp_path) -> None:
    assert runs.run_status(tmp_path) == "new"
    (tmp_path / runs.CONFIG_FILE).write_text("algo: ppo\n")
    assert runs.run_status(tmp_path) == "interrupted"
    runs.write_result(tmp_path, _result())
    assert runs.run_status(tmp_path) == "complete"
    assert runs.read_result(tmp_path) == _result()
    assert not list(tmp_path.glob("*.tmp"))


def test_failed_status(tmp_path) -> None:
    runs.atomic_write_json(tmp_path / runs.ERROR_FILE, {"returncode": 1})
    assert runs.run_status(tmp_path) == "failed"


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"game": "Pong"}), "does not match the result schema"),
    ],
)
def test_corrupt_result_names_the_file(tmp_path, content: str, match: str) -> None:
    (tmp_path / runs.RESULT_FILE).write_text(content)
    with pytest.raises(CorruptRunError, match=match) as info:
        runs.read_result(tmp_path)
    assert str(tmp_path / runs.RESULT_FILE) in str(info.value)


def test_result_field_checks(tmp_path) -> None:
    runs.write_result(tmp_path, _result(final_returns=["a"]))
    with pytest.raises(CorruptRunError, match="final_returns"):
        runs.read_result(tmp_path)
    runs.write_result(tmp_path, _result(curve_steps=[1]))
    with pytest.raises(CorruptRunError, match="differ in length"):
        runs.read_result(tmp_path)


def test_latest_checkpoint_orders_by_step_count(tmp_path) -> None:
    assert runs.latest_checkpoint(tmp_path) is None
    ckpt = tmp_path / runs.CHECKPOINT_DIR
    ckpt.mkdir()
    for steps in (900, 10000, 2000):
        (ckpt / f"rl_model_{steps}_steps.zip").write_bytes(b"")
    assert runs.latest_checkpoint(tmp_path).name == "rl_model_10000_steps.zip"


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("conv", "conv"),
        ("coordconv", "coordconv"),
        ("coordconv-L0", "coordconv"),
        ("coordconv-L0-1-2-r", "coordconv-all-r"),
        ("coordconv-L2-0", "coordconv-L0-2"),
        ("coordconv-L1-1", "coordconv-L1"),
    ],
)
def test_canonical_variant_names(name: str, canonical: str) -> None:
    # The train CLI names run directories after the canonical variant and the sweep runner looks
    # for them by the same name, so both must canonicalise the same way.
    assert Variant.from_name(name).canonical().name == canonical


def test_canonical_rejects_layers_the_nature_cnn_lacks() -> None:
    with pytest.raises(ValueError):
        Variant.from_name("coordconv-L7").canonical()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask: int) -> None:
    """mkstemp makes 0600 files; atomic_write gives them 0666 less the umask, as open() does,
    for JSON, YAML and model zips alike."""
    old = os.umask(umask)
    try:
        runs.write_progress(tmp_path, 1, 2, 3.0)
        runs.write_model(tmp_path / "model.zip", lambda f: f.write(b"PK"))
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["progress.json", "model.zip", "plain.txt"], 0o666 & ~umask)


def test_an_atomic_write_that_fails_leaves_the_old_file(tmp_path) -> None:
    """A crash (here: an exception) while a file is rewritten leaves the old file whole and no
    temporary file behind; readers never see half a file."""
    path = tmp_path / runs.RESULT_FILE
    path.write_text('{"old": true}\n')

    def half_then_crash(f) -> None:
        f.write(b'{"new": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        runs.write_model(path, half_then_crash)
    assert path.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == [runs.RESULT_FILE]
