"""The service images of docker/python.Dockerfile start and work, checked without a Docker engine.

For each target (trainer, aggregator, backend) the Dockerfile is parsed and replayed (tests/integration/
dockerfile_replay.py): a clean `python -m venv`, a folder holding ONLY the paths the target COPYs, and the
target's own `pip install` commands run there. One step is mapped: the Dockerfile installs torch with
`--index-url https://download.pytorch.org/whl/cpu`, which cannot be reached here; the replay drops that option
and keeps the pinned spec `torch==2.13.0`, whose CPU wheel pip finds on this machine's disk. Targets with the same
install recipe share one venv, built once per test session (it takes minutes).

Then each target's ENTRYPOINT + CMD answers `--help` from that venv, with the image's environment and nothing of
the development install (no PYTHONPATH, the working directory outside the checkout), and a trainer and an
aggregator started from it as their images start them (settings as FLCHAIN_* variables) take one round through
to finalization against a real Anvil chain and IPFS daemon. The round is driven only through the service
processes and the chain's clock, so a change of the on-chain round flow changes nothing here but
`drive_one_round`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flchain.chain.types import RoundStatus
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, advance_time
from flchain.devnet.ipfs import IpfsNode
from flchain.paths import REPO_ROOT
from tests.integration import dockerfile_replay as replay
from tests.integration.test_aggregator_round import (
    AGGREGATOR_INDEX,
    AGGREGATOR_KEY_ENV,
    COMMIT_WINDOW_S,
    HONEST,
    REVEAL_WINDOW_S,
    Role,
    Stage,
    aggregator_env,
    make_stage,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCKERFILE = REPO_ROOT / "docker" / "python.Dockerfile"
TARGETS = ("trainer", "aggregator", "backend")
TRAINERS = HONEST[:2]


@dataclass(frozen=True)
class Image:
    """A replayed target: its parsed recipe and the bin directory of its venv."""

    target: replay.Target
    bin_dir: Path

    def command(self, *args: str) -> list[str]:
        """ENTRYPOINT + `args` (or + CMD when no args are given), run from the replayed venv."""
        entry, *rest = self.target.entrypoint
        return [str(self.bin_dir / entry), *rest, *(args or self.target.cmd)]

    def env(self, **extra: str) -> dict[str, str]:
        return {**replay.image_env(self.target, self.bin_dir.parent), **extra}


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image]:
    stages = replay.parse(DOCKERFILE)
    built: dict[tuple[object, ...], Path] = {}
    result = {}
    for name in TARGETS:
        target = replay.target(stages, name)
        if target.recipe not in built:
            built[target.recipe] = replay.replay(target, REPO_ROOT, tmp_path_factory.mktemp(f"image-{name}"))
        replay.build_steps(target, built[target.recipe])
        result[name] = Image(target, built[target.recipe])
    return result


def run_image(image: Image, args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(image.command(*args), cwd=cwd, env=image.env(COLUMNS="200"), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("name", TARGETS)
def test_each_image_answers_help_for_its_own_command(name: str, images: dict[str, Image], tmp_path: Path) -> None:
    image = images[name]

    root = run_image(image, ("--help",), tmp_path)
    service = run_image(image, (*image.target.cmd, "--help"), tmp_path)

    assert root.returncode == 0, root.stdout + root.stderr
    assert image.target.cmd[0] in root.stdout
    assert service.returncode == 0, service.stdout + service.stderr
    assert "Usage:" in service.stdout and "--" in service.stdout
    assert "bench" not in root.stdout  # the bench is not in the image, so it is not offered


def test_images_hold_no_bench_and_their_services_load_no_plotting(images: dict[str, Image], tmp_path: Path) -> None:
    # matplotlib itself is in the image: the mnist1d package (MNIST-1D's generator) imports it when a task uses
    # MNIST-1D. What must hold is that no bench code ships and that the services do not load plotting otherwise.
    probe = ("import importlib.util as u, sys; import flchain.cli, trainer.node, aggregator.service, "
             "validator.service; print(bool(u.find_spec('bench')), 'matplotlib' in sys.modules)")

    result = subprocess.run([str(images["trainer"].bin_dir / "python"), "-c", probe], cwd=tmp_path,
                            env=images["trainer"].env(), capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"


@pytest.mark.parametrize("name", ["trainer", "aggregator"])
def test_trainer_and_aggregator_images_carry_the_shakespeare_texts_fetched_while_building(
    name: str, images: dict[str, Image], tmp_path: Path
) -> None:
    # The texts come from a build step of the image, not from the checkout's data/ nor from a run-time download:
    # the probe runs outside the checkout with the image's environment and pip pointed at an unreachable index.
    image = images[name]
    probe = ("from flchain.ml import shakespeare as s; split = s.default_role_split(); "
             "print(s.DEFAULT_TEXTS_DIR, len(split.train), len(split.heldout))")
    offline = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_NO_INDEX": "1"}

    result = subprocess.run([str(image.bin_dir / "python"), "-c", probe], cwd=tmp_path,
                            env=image.env(**offline), capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-3000:]
    texts_dir, trainer_roles, heldout_roles = result.stdout.split()
    image_root = image.bin_dir.parent.parent
    assert Path(texts_dir) == Path(replay.image_path("/opt/flchain-data/shakespeare/texts", image_root))
    assert not Path(texts_dir).is_relative_to(REPO_ROOT)
    assert (int(trainer_roles), int(heldout_roles)) == (427, 47)  # the role split of the extracted plays


def test_backend_image_has_no_training_data(images: dict[str, Image]) -> None:
    assert "FLCHAIN_SHAKESPEARE_TEXTS" not in images["backend"].env()
    assert "FLCHAIN_SHAKESPEARE_TEXTS" in images["trainer"].env()


def trainer_env(image: Image, stage: Stage, role: Role, state_dir: Path) -> dict[str, str]:
    key_env = f"TEST_TRAINER_KEY_{role.account_index}"
    settings = {
        "RPC_URL": stage.rpc_url, "MANIFEST": str(stage.manifest_path), "TASK_ID": str(stage.task_id),
        "IPFS_URL": stage.ipfs_url, "STATE_DIR": str(state_dir), "PRIVATE_KEY_ENV": key_env,
        "DATA_SOURCE": "file", "DATA_PATH": str(stage.train_file), "SHARD_INDEX": str(role.shard),
        "NUM_SHARDS": str(len(HONEST)), "LOCAL_STEPS": "10", "DEVICE": "cpu", "MAX_ROUNDS": "1",
        "POLL_INTERVAL_S": "0.2", "SUBMIT_MARGIN_S": "1", "LOG_FORMAT": "plain",
    }
    return image.env(**{f"FLCHAIN_TRAINER_{k}": v for k, v in settings.items()},
                     **{key_env: dev_account(role.account_index).key.hex(), "OMP_NUM_THREADS": "1"})


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def drive_one_round(stage: Stage, aggregator: subprocess.Popen[bytes], trainers: list[subprocess.Popen[bytes]]) -> None:
    """Once every trainer committed, end the commit phase; once they revealed and exited, end the reveal phase for
    the aggregator."""
    def committed() -> bool:
        return all(stage.sponsor.get_commitment(stage.task_id, 1, role.address).commitment != bytes(32)
                   for role in TRAINERS)

    wait_for(lambda: committed() or any(t.poll() is not None for t in trainers), "every trainer to commit", 300)
    advance_time(stage.rpc_url, COMMIT_WINDOW_S + 1)
    for trainer in trainers:
        trainer.wait(timeout=300)
    advance_time(stage.rpc_url, REVEAL_WINDOW_S + 1)
    aggregator.wait(timeout=300)


def _start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def test_a_trainer_and_an_aggregator_from_the_images_finish_a_round_on_a_real_chain(
    images: dict[str, Image], anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path
) -> None:
    # Prepare: a deployed, funded task (from the test process); the services only get what an image gets.
    stage = make_stage(anvil, ipfs, tmp_path)
    aggregator_image, trainer_image = images["aggregator"], images["trainer"]
    env = aggregator_image.env(**aggregator_env(stage, tmp_path / "aggregator-state", rounds=1),
                               **{AGGREGATOR_KEY_ENV: dev_account(AGGREGATOR_INDEX).key.hex(), "OMP_NUM_THREADS": "1"})
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # Execute: the aggregator image's command opens round 1; the trainer image's command, twice, trains.
        aggregator = _start(aggregator_image.command(), env, tmp_path, tmp_path / "aggregator.log")
        processes.append(aggregator)
        wait_for(lambda: aggregator.poll() is not None
                 or stage.sponsor.round_status(stage.task_id, 1) is RoundStatus.COMMITTING, "round 1 to open")
        assert aggregator.poll() is None, (tmp_path / "aggregator.log").read_text()[-3000:]
        trainers = [_start(trainer_image.command(), trainer_env(trainer_image, stage, role, tmp_path / f"t{i}"),
                           tmp_path, tmp_path / f"trainer-{i}.log") for i, role in enumerate(TRAINERS)]
        processes.extend(trainers)
        drive_one_round(stage, aggregator, trainers)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    # Assert: every process exited cleanly, the round is finalized, both trainers revealed and are paid.
    logs = {p.name: p.read_text()[-3000:] for p in tmp_path.glob("*.log")}
    assert [p.returncode for p in processes] == [0] * len(processes), logs
    chain = stage.sponsor
    assert chain.round_status(stage.task_id, 1) is RoundStatus.FINALIZED, logs
    stored = chain.get_round(stage.task_id, 1)
    assert stored.payout_total_wei > 0, logs
    for role in TRAINERS:
        assert chain.get_commitment(stage.task_id, 1, role.address).revealed
    assert all(chain.get_reputation(stage.task_id, role.address).round == 1 for role in TRAINERS)
    assert "ModuleNotFoundError" not in "".join(logs.values())
