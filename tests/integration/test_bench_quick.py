"""`flchain bench all --tiny` end to end (real Anvil, in-process trainers): every output exists and is sane."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.accuracy import METHODS
from bench.cli import bench_app
from bench.report import EXPERIMENT_FILES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ENVELOPE_KEYS = {"experiment", "mode", "wall_time_s", "machine", "settings", "aims", "notes", "figures", "results"}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(bench_app, ["all", "--tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def _load(out: Path, experiment: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / f"{EXPERIMENT_FILES[experiment]}.json").read_text())
    return doc


def _in_unit_interval(x: float) -> bool:
    return 0.0 <= x <= 1.0


def test_every_experiment_writes_an_envelope_a_markdown_table_and_nonempty_pngs(outputs: Path) -> None:
    for experiment, stem in EXPERIMENT_FILES.items():
        doc = _load(outputs, experiment)
        assert set(doc) >= ENVELOPE_KEYS, f"{stem}.json lacks {ENVELOPE_KEYS - set(doc)}"
        assert doc["experiment"] == experiment and doc["mode"] == "tiny" and doc["wall_time_s"] > 0
        assert "|---" in (outputs / f"{stem}.md").read_text()
        assert doc["figures"], f"{experiment} made no figure"
        for name in doc["figures"]:
            data = (outputs / name).read_bytes()
            assert data.startswith(PNG_MAGIC) and len(data) > 5_000, f"{name} is not a real PNG"
    index = (outputs / "README.md").read_text()
    assert all(f"{stem}.md" in index for stem in EXPERIMENT_FILES.values())


def test_accuracies_are_fractions_and_every_method_ran_on_both_splits(outputs: Path) -> None:
    results = _load(outputs, "accuracy")["results"]

    runs = results["runs"]
    assert {(r["method"], r["split"]) for r in runs} == {(m, s) for m in METHODS for s in ("iid", "dirichlet")}
    for run in runs:
        assert _in_unit_interval(run["final_accuracy"]) and all(_in_unit_interval(a) for a in run["curve"])
        assert run["sample_gradients"] > 0
        if run["method"] != "centralized":  # digits rejects updates over the norm bound: none is scaled down
            assert run["scaled_per_round"] == [0] * len(run["curve"])
            assert len(run["rejected_per_round"]) == len(run["curve"])
    for split in ("iid", "dirichlet"):
        centralized, flchain = results["summary"][split]["centralized"], results["summary"][split]["flchain"]
        assert centralized["ratio_mean"] == 1.0 and flchain["ratio_mean"] > 0


def test_robustness_cells_hold_fractions_and_an_aim_per_attack_for_the_default(outputs: Path) -> None:
    doc = _load(outputs, "robustness")
    cells = doc["results"]["cells"]

    attacks = doc["results"]["attacks"]
    assert {c["attack"] for c in cells} == {"honest", "attackers_absent", *attacks}  # clean, baselines, attacks
    fractions = {c["fraction"] for c in cells if c["attack"] in attacks}
    assert {c["fraction"] for c in cells if c["attack"] == "attackers_absent"} == fractions
    assert {float(f) for f in doc["results"]["honest_alone_accuracy"]} == fractions
    for cell in cells:
        assert _in_unit_interval(cell["final_accuracy"]) and _in_unit_interval(cell["payout_share"])
    assert len(doc["aims"]) == 2 * len(attacks)
    assert all(a["met"] in (True, False) for a in doc["aims"])


def test_fairness_pays_within_the_budget_and_correlations_are_in_range(outputs: Path) -> None:
    results = _load(outputs, "fairness")["results"]

    for seed in results["correlations"]:
        assert 0 < seed["paid_wei"] <= seed["budget_wei"]
        for key in ("shapley", "quality", "loo", "standalone"):
            assert seed[key] is None or -1.0 <= seed[key] <= 1.0
    trainers = results["trainers"]
    assert {t["group"] for t in trainers} == {"clean", "noise20", "noise50", "half", "duplicated"}
    assert sum(t["payout_wei"] for t in trainers) == results["correlations"][0]["paid_wei"]


def test_gas_figures_are_present_for_every_participant_count_and_add_up(outputs: Path) -> None:
    doc = _load(outputs, "gas")
    rounds = doc["results"]["rounds"]

    counts = doc["settings"]["participants"]
    assert sorted({r["participants"] for r in rounds}) == sorted(counts)
    for r in rounds:
        parts = [r["open_round"], r["finalize_round"], r["submit_update_median"], r["claim"], *r["record_reputations"]]
        assert all(21_000 < gas < 30_000_000 for gas in parts)
        assert r["aggregator_total"] == r["open_round"] + r["finalize_round"] + sum(r["record_reputations"]) + sum(
            r["slashes"])
        assert len(r["slashes"]) == round(0.1 * r["participants"])


def test_overhead_rows_have_nonnegative_step_times_and_a_scoring_ratio(outputs: Path) -> None:
    rows = _load(outputs, "overhead")["results"]["rows"]

    assert {row["sweep"] for row in rows} == {"trainers", "model"}
    for row in rows:
        steps = row["round"]
        assert all(steps[k] >= 0 for k in ("training_per_trainer_s", "upload_per_trainer_s", "download_verify_s",
                                           "scoring_s", "aggregation_s", "publish_s"))
        assert row["chain"]["aggregator_s"] > 0 and row["critical_path_s"] > 0
        assert math.isfinite(steps["scoring_ratio"]) and steps["scoring_ratio"] > 0
        # the same scoring time over as many passes of distinct models: the two ratios share the numerator
        assert steps["bare_distinct_s"] > 0
        assert math.isclose(steps["distinct_ratio"] * steps["bare_distinct_s"],
                            steps["scoring_ratio"] * steps["bare_forward_s"], rel_tol=1e-9)
        # LossScore (base + one per accepted update), then the value estimate within its budget (value.ValueConfig)
        budget = max(16, 5 * steps["accepted"])
        assert steps["accepted"] + 1 < steps["forward_passes"] <= steps["accepted"] + 1 + budget
        # the value game's share of those passes, and its time over as many bare passes
        assert 0 < steps["value_passes"] <= budget and steps["value_game_s"] > 0
        assert math.isfinite(steps["value_ratio"]) and steps["value_ratio"] > 0
