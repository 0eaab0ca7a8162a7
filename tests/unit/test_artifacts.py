"""The committed contract artifacts are exactly what the current sources compile to."""

from __future__ import annotations

import json

import pytest

from flchain.chain.compile import ARTIFACTS_DIR, DEPLOYABLE, EVM_VERSION, OPTIMIZER_RUNS, Artifact, compile_all


@pytest.fixture(scope="module")
def compiled() -> dict[str, Artifact]:
    return compile_all()


@pytest.mark.parametrize("name", [name for _, name in DEPLOYABLE])
def test_committed_artifact_matches_a_fresh_compile_of_the_sources(compiled: dict[str, Artifact], name: str) -> None:
    committed = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    fresh = compiled[name]

    assert committed["abi"] == fresh.abi, f"{name}.json ABI is stale: rebuild the artifacts"
    assert committed["bytecode"] == fresh.bytecode, f"{name}.json bytecode is stale: rebuild the artifacts"
    assert committed["compiler"] == {
        "version": fresh.compiler_version,
        "evmVersion": EVM_VERSION,
        "optimizerRuns": OPTIMIZER_RUNS,
    }


def test_committed_artifacts_are_byte_identical_to_what_write_artifacts_produces(
    compiled: dict[str, Artifact],
) -> None:
    for name, artifact in compiled.items():
        assert (ARTIFACTS_DIR / f"{name}.json").read_text() == artifact.to_json(), name


def test_coordinator_fits_the_contract_size_limit(compiled: dict[str, Artifact]) -> None:
    # EIP-170 limits deployed code to 24,576 bytes; creation code is an upper bound of the deployed code.
    assert len(bytes.fromhex(compiled["FLCoordinator"].bytecode[2:])) < 24_576
