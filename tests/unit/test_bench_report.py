"""The benchmark's report envelope: aims are judged right, NaN never reaches the JSON, the index lists what ran."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.report import ExperimentReport, aim_at_least, aim_at_most, fmt_mean_std, write_index, write_report


@dataclass(frozen=True)
class _Settings:
    rounds: int
    fractions: tuple[float, ...]


def _report(value: float) -> ExperimentReport:
    return ExperimentReport(
        experiment="accuracy", mode="tiny", settings=_Settings(2, (0.1, 0.3)),
        results={"ratio": value, "nested": {"values": (1.0, math.nan)}}, markdown=["# Title", "", "| a |", "|---|"],
        aims=(aim_at_least("ratio", value, 0.99), aim_at_most("share", 0.02, 0.01)), wall_time_s=1.5,
        notes=("a note",), figures=("accuracy.png",),
    )


def test_aims_are_met_at_the_bound_and_unmeasured_when_nan() -> None:
    assert aim_at_least("x", 0.99, 0.99).met is True
    assert aim_at_least("x", 0.9899, 0.99).met is False
    assert aim_at_most("x", 0.01, 0.01).met is True
    assert aim_at_most("x", 0.0101, 0.01).met is False
    assert aim_at_least("x", math.nan, 0.9).met is None
    assert aim_at_least("x", None, 0.9).row().endswith("| not measured |")


def test_a_measure_equal_to_its_target_up_to_float_rounding_meets_it() -> None:
    from scipy.stats import spearmanr

    rho = float(spearmanr([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]).statistic)  # 1 - 6 * 2 / 120 = 0.9; computes as
    # 0.8999999999999998 with scipy 1.x

    assert abs(rho - 0.9) < 1e-12
    assert aim_at_least("rho", rho, 0.9).met is True
    assert aim_at_least("x", 0.9 - 1e-6, 0.9).met is False
    assert aim_at_most("x", 0.01 * (1 + 1e-12), 0.01).met is True
    assert aim_at_most("x", 0.01 + 1e-8, 0.01).met is False


def test_written_json_is_strict_with_nan_as_null_and_settings_verbatim(tmp_path: Path) -> None:
    json_path, md_path = write_report(_report(math.nan), tmp_path)

    doc = json.loads(json_path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert doc["results"]["ratio"] is None and doc["results"]["nested"]["values"] == [1.0, None]
    assert doc["settings"] == {"rounds": 2, "fractions": [0.1, 0.3]}
    assert doc["aims"][0]["met"] is None and doc["aims"][1]["met"] is False
    text = md_path.read_text()
    assert "**not met**" in text and "![accuracy.png](accuracy.png)" in text and "a note" in text


def test_index_lists_only_the_experiments_that_wrote_json(tmp_path: Path) -> None:
    write_report(_report(0.995), tmp_path)

    index = write_index(tmp_path).read_text()

    assert "[accuracy.md](accuracy.md)" in index and "| 1 of 2 |" in index
    assert "robustness.md" not in index


def test_a_hand_written_notes_section_of_the_index_survives_a_new_run_and_the_table_is_made_again(
    tmp_path: Path,
) -> None:
    write_report(_report(0.995), tmp_path)
    first = write_index(tmp_path).read_text()
    notes = "## Notes\n\n- the robustness row was run with `--fresh-eval`\n"
    (tmp_path / "README.md").write_text(first.replace("| 1 of 2 |", "| edited by hand |") + "\n" + notes)

    again = write_index(tmp_path).read_text()

    assert again == first + "\n" + notes
    assert "edited by hand" not in again and again.count("## Notes") == 1


def test_mean_and_std_formatting() -> None:
    assert fmt_mean_std([0.5]) == "0.500"
    assert fmt_mean_std([0.5, 0.7]) == "0.600 ± 0.141"
    assert fmt_mean_std([]) == "n/a"
