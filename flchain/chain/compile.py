"""Compile contracts/ from source with solc-js (through py-solc-x and toolchain/solc-wrapper.js) into artifacts.

Artifacts are JSON files `flchain/chain/artifacts/<Contract>.json` holding the ABI, the creation bytecode and the
compiler settings. They are committed so a service needs no compiler; `tests/unit/test_artifacts.py` proves they
are exactly what the current sources compile to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import solcx

from flchain.paths import CONTRACTS_DIR, REPO_ROOT, SOLC_WRAPPER

logger = logging.getLogger(__name__)

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
# Contracts that get an artifact: (source path relative to the repo root, contract name).
DEPLOYABLE = (
    ("contracts/FLCoordinator.sol", "FLCoordinator"),
    ("contracts/token/DemoToken.sol", "DemoToken"),
    ("contracts/interfaces/IFLCoordinator.sol", "IFLCoordinator"),
)


class CompileError(RuntimeError):
    """The compiler reported errors (the message lists them)."""


@dataclass(frozen=True)
class Artifact:
    contract_name: str
    source_path: str
    abi: list[dict[str, object]]
    bytecode: str
    compiler_version: str

    @property
    def abi_sha256(self) -> str:
        return abi_sha256(self.abi)

    def to_json(self) -> str:
        body = {
            "contractName": self.contract_name,
            "sourcePath": self.source_path,
            "compiler": {"version": self.compiler_version, "evmVersion": EVM_VERSION, "optimizerRuns": OPTIMIZER_RUNS},
            "abi": self.abi,
            "bytecode": self.bytecode,
        }
        return json.dumps(body, indent=1, sort_keys=True) + "\n"


def abi_sha256(abi: list[dict[str, object]]) -> str:
    """A stable hash of an ABI (canonical JSON), recorded in deployment manifests."""
    return hashlib.sha256(json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def standard_input() -> dict[str, object]:
    """Standard JSON input covering every .sol file under contracts/."""
    sources = {
        str(path.relative_to(REPO_ROOT)): {"content": path.read_text()}
        for path in sorted(CONTRACTS_DIR.rglob("*.sol"))
    }
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "viaIR": True,
            "metadata": {"bytecodeHash": "none", "appendCBOR": False},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }


def compile_all() -> dict[str, Artifact]:
    """Compile every source; return the deployable artifacts by contract name."""
    output = solcx.compile_standard(standard_input(), solc_binary=SOLC_WRAPPER, allow_empty=True)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e.get("message", "?")) for e in errors))
    version = compiler_version()
    artifacts: dict[str, Artifact] = {}
    for source_path, name in DEPLOYABLE:
        entry = output["contracts"][source_path][name]
        artifacts[name] = Artifact(
            contract_name=name,
            source_path=source_path,
            abi=entry["abi"],
            bytecode="0x" + entry["evm"]["bytecode"]["object"],
            compiler_version=version,
        )
    return artifacts


def compiler_version() -> str:
    """The long version string of the solc-js build behind the wrapper, e.g. 0.8.30+commit.73712a01.Emscripten.clang."""
    out = subprocess.run(["node", str(SOLC_WRAPPER), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1].removeprefix("Version: ")


def write_artifacts(artifacts: dict[str, Artifact], directory: Path = ARTIFACTS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in artifacts.items():
        path = directory / f"{name}.json"
        path.write_text(artifact.to_json())
        written.append(path)
        logger.info("wrote %s", path)
    return written


def load_artifact(name: str, directory: Path = ARTIFACTS_DIR) -> Artifact:
    """Load a committed artifact by contract name."""
    data = json.loads((directory / f"{name}.json").read_text())
    return Artifact(
        contract_name=data["contractName"],
        source_path=data["sourcePath"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        compiler_version=data["compiler"]["version"],
    )
