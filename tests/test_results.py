"""The committed studies under results/: compare reads each one without error and finds every run
its manifest lists (every game, variant and seed), so `python -m coordrl.compare results/NAME`
regenerates its report from the committed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordrl.files import read_json
from coordrl.sweeps.results import collect_runs

RESULTS = Path(__file__).resolve().parent.parent / "results"
# A study is a sweep directory (results/NAME) or several (results/NAME/PART, e.g. one per backend).
STUDIES = sorted(p.parent for p in RESULTS.rglob("manifest.json") if "report" not in p.parts)


def test_there_are_committed_studies():
    assert STUDIES, "no study with a manifest.json under results/"


@pytest.mark.parametrize("study", STUDIES, ids=[str(p.relative_to(RESULTS)) for p in STUDIES])
def test_every_run_of_the_manifest_is_complete_and_readable(study: Path):
    runs = collect_runs(study, exclude=study / "report")
    assert [(r.name, r.reason) for r in runs.not_usable] == []
    definition = read_json(study / "manifest.json")["definition"]
    found = {(r.game, r.variant, r.seed) for r in runs.complete}
    expected = {
        (g, v, s)
        for g in definition["games"]
        for v in definition["variants"]
        for s in definition["seeds"]
    }
    assert found == expected
    for record in runs.complete:
        assert record.result.steps_done >= definition["timesteps"]
        assert (record.path / "config.yaml").is_file()
        assert (record.path / "evaluations.json").is_file()
        assert not (record.path / "model.zip").exists()  # never committed
