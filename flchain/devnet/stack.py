"""The whole platform on one machine, without Docker: `flchain up` / `flchain down`.

Steps of `up`, in order: start the chain (Anvil, state persisted to a file), start the IPFS daemon, deploy the
contracts and a demo token, create and fund a task, start the dashboard API with its indexer, start the
aggregator, start the validators (if any), start the trainers. Every service is a child process in its own
session, logging to a file under one run directory; `stack.json` there records their PIDs so `down` stops exactly
what `up` started.

Accounts are Anvil's public development accounts (index 0 sponsor, 1 aggregator, 2.. trainers, then validators);
their keys are handed to the services through environment variables, never written to disk or logs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from flchain.atomic import write_atomic
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.deploy import deploy_contracts
from flchain.chain.types import ValidatorSet
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import start_anvil
from flchain.devnet.ipfs import start_ipfs, upload_limit_bytes
from flchain.devnet.process import DevnetError, ManagedProcess, free_port, port_is_open, start_process
from flchain.devnet.workloads import WORKLOADS, Workload, WorkloadName, prefixed
from flchain.ml.specs import param_count, spec_from_name
from flchain.sponsor import TaskTerms, create_task
from flchain.storage import IpfsClient

logger = logging.getLogger(__name__)

SPONSOR_INDEX, AGGREGATOR_INDEX, FIRST_TRAINER_INDEX = 0, 1, 2
TOKEN = 10**18
# Single-threaded numerics: several services share two cores; oversubscribed BLAS threads are far slower.
RED_TEAM_TRAINER = "bench.redteam"  # `python -m bench.redteam run`: a trainer node with dishonest updates
SERVICE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class TrainerRole:
    """One simulated data owner: its data shard and, for demos only, a red-team behaviour (bench.redteam)."""

    name: str
    red_team: str | None = None
    label_noise: float = 0.0


@dataclass(frozen=True)
class StackConfig:
    run_dir: Path = Path("run/local")
    trainers: tuple[TrainerRole, ...] = tuple(TrainerRole(f"trainer-{i}") for i in range(3))
    rounds: int = 0  # aggregator stops after this round (0: runs until stopped)
    model: str = "mlp-digits"
    workload: Workload = WORKLOADS[WorkloadName.DIGITS]  # data sources; `model` names the spec
    commit_window_s: int = 15  # commit phase of each round
    reveal_window_s: int = 10  # reveal phase right after it
    local_steps: int = 60
    reward_per_round_wei: int = 100 * TOKEN
    min_stake_wei: int = 10 * TOKEN
    funding_wei: int = 10_000 * TOKEN
    api_port: int | None = None
    validators: int = 0  # validator services (accounts after the trainers'); 0: the aggregator finalizes alone
    quorum: int = 0  # attestations a round's proposal needs (1..validators when there are validators)
    validator_bond_wei: int = 10 * TOKEN

    @property
    def first_validator_index(self) -> int:
        return FIRST_TRAINER_INDEX + len(self.trainers)


@dataclass
class StackInfo:
    """What `up` started; saved as run_dir/stack.json."""

    run_dir: str
    rpc_url: str = ""
    ipfs_url: str = ""  # with the upload limit (trainers)
    ipfs_direct_url: str = ""  # the daemon itself (sponsor, aggregator, indexer)
    api_url: str = ""
    manifest: str = ""
    task_id: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    trainers: dict[str, str] = field(default_factory=dict)  # name -> address

    def save(self) -> Path:
        path = Path(self.run_dir) / "stack.json"
        write_atomic(path, (json.dumps(asdict(self), indent=2) + "\n").encode())
        return path

    @classmethod
    def load(cls, run_dir: Path) -> StackInfo:
        path = run_dir / "stack.json"
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as e:
            raise DevnetError(f"no running stack recorded in {path}: {e}") from e


class LocalStack:
    """Starts the services one named step at a time; `processes` holds every child for monitoring and stop."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir.resolve()
        self.logs = self.run_dir / "logs"
        self.info = StackInfo(run_dir=str(self.run_dir))
        self.processes: dict[str, ManagedProcess] = {}
        # the sponsor's validation secret (mnist1d-secret, mnist1d-fresh): aggregator and validators only, never on disk
        self.validation_secret = secrets.token_hex(32)

    # ------------------------------------------------------------ the steps of `up`
    def start_chain(self) -> None:
        # One block a second, as on a real chain: services read time from blocks, and an idle Anvil mines none.
        accounts = max(10, self.config.first_validator_index + self.config.validators)
        node = start_anvil(self.logs / "anvil.log", state_path=self.run_dir / "anvil-state.json", block_time_s=1,
                           accounts=accounts)
        self._track("anvil", node.process)
        self.info.rpc_url = node.rpc_url

    def start_ipfs(self) -> None:
        """The daemon behind the upload-limiting front: trainers get the front (uploads up to the task's update
        cap), the sponsor step, the aggregator and the indexer the daemon itself (the state blobs are larger)."""
        limit = upload_limit_bytes(param_count(spec_from_name(self.config.model)))
        node = start_ipfs(self.run_dir / "ipfs-repo", self.logs / "ipfs.log", max_upload_bytes=limit)
        self._track("ipfs", node.process)
        if node.front is not None:
            self._track("ipfs-front", node.front)
        self.info.ipfs_url = node.api_url
        self.info.ipfs_direct_url = node.direct_url

    def deploy(self) -> None:
        w3 = connect(self.info.rpc_url)
        deployment = deploy_contracts(w3, dev_account(SPONSOR_INDEX))
        manifest_path = deployment.manifest.save(self.run_dir / "deployment.json")
        self.info.manifest = str(manifest_path)
        token = TokenClient(w3, deployment.token, dev_account(SPONSOR_INDEX))
        token.mint(dev_account(SPONSOR_INDEX).address, self.config.funding_wei)
        for offset, role in enumerate(self.config.trainers):
            trainer = dev_account(FIRST_TRAINER_INDEX + offset)
            token.mint(trainer.address, 10 * self.config.min_stake_wei)
            self.info.trainers[role.name] = trainer.address
        bonded = [*self._validator_indexes(), AGGREGATOR_INDEX] if self.config.validators else []
        for index in bonded:  # validators and the proposing aggregator hold bonds on a validated task
            token.mint(dev_account(index).address, 2 * self.config.validator_bond_wei)

    def create_task(self) -> None:
        w3 = connect(self.info.rpc_url)
        manifest = json.loads(Path(self.info.manifest).read_text())
        client = CoordinatorClient(w3, manifest["coordinator"]["address"], dev_account(SPONSOR_INDEX))
        terms = TaskTerms(
            reward_per_round_wei=self.config.reward_per_round_wei, min_stake_wei=self.config.min_stake_wei,
            funding_wei=self.config.funding_wei, commit_window_s=self.config.commit_window_s,
            reveal_window_s=self.config.reveal_window_s,
        )
        with IpfsClient(self.info.ipfs_direct_url) as storage:
            created = create_task(
                client, storage, token=manifest["token"]["address"], spec=spec_from_name(self.config.model),
                terms=terms, aggregators=[dev_account(AGGREGATOR_INDEX).address], title="local demo task",
                validation=ValidatorSet(
                    tuple(dev_account(i).address for i in self._validator_indexes()), self.config.quorum,
                    self.config.validator_bond_wei if self.config.validators else 0,
                ),
                dataset=self.config.workload.name.value,
            )
        self.info.task_id = created.task_id

    def start_api(self) -> None:
        port = self.config.api_port or free_port()
        env = {
            "FLCHAIN_API_PORT": str(port), "FLCHAIN_API_DATABASE_URL": f"sqlite:///{self.run_dir / 'index.sqlite3'}",
            "FLCHAIN_INDEXER_RPC_URL": self.info.rpc_url, "FLCHAIN_INDEXER_MANIFEST_PATH": self.info.manifest,
            "FLCHAIN_INDEXER_IPFS_URL": self.info.ipfs_direct_url, "FLCHAIN_INDEXER_CONFIRMATIONS": "0",
            "FLCHAIN_INDEXER_POLL_INTERVAL_S": "1",
        }
        url = f"http://127.0.0.1:{port}"
        self._service("api", ["api", "--reset-on-chain-change"], env, lambda: _http_ok(f"{url}/health"))
        self.info.api_url = url

    def start_aggregator(self) -> None:
        env = {
            **self._common_env("FLCHAIN_AGGREGATOR_"),
            "FLCHAIN_AGGREGATOR_IPFS_URL": self.info.ipfs_direct_url,  # publishes the float64 state: no upload limit
            "FLCHAIN_AGGREGATOR_PRIVATE_KEY_ENV": "FLCHAIN_AGGREGATOR_KEY",
            "FLCHAIN_AGGREGATOR_KEY": dev_account(AGGREGATOR_INDEX).key.hex(),
            "FLCHAIN_AGGREGATOR_STATE_DIR": str(self.run_dir / "aggregator-state"),
            "FLCHAIN_AGGREGATOR_ROUNDS": str(self.config.rounds),
            "FLCHAIN_AGGREGATOR_POLL_INTERVAL_S": "1",
            "FLCHAIN_VALIDATION_SECRET": self.validation_secret,
            **prefixed(tuple(self.config.workload.aggregator_settings.items()), "FLCHAIN_AGGREGATOR_"),
        }
        self._service("aggregator", ["aggregator", "run"], env)

    def start_validators(self) -> None:
        """One `flchain validator run` per validator account (each deposits its bond on its first tick)."""
        for number, index in enumerate(self._validator_indexes(), start=1):
            env = {
                **self._common_env("FLCHAIN_VALIDATOR_"),
                "FLCHAIN_VALIDATOR_PRIVATE_KEY_ENV": "FLCHAIN_VALIDATOR_KEY",
                "FLCHAIN_VALIDATOR_KEY": dev_account(index).key.hex(),
                "FLCHAIN_VALIDATOR_ROUNDS": str(self.config.rounds), "FLCHAIN_VALIDATOR_POLL_INTERVAL_S": "1",
                # hash-only adds of the round's float64 state, as the aggregator publishes it: no upload limit
                "FLCHAIN_VALIDATOR_IPFS_URL": self.info.ipfs_direct_url,
                "FLCHAIN_VALIDATION_SECRET": self.validation_secret,
                **prefixed(self.config.workload.aggregator_env, "FLCHAIN_VALIDATOR_"),  # the same validation data
            }
            self._service(f"validator-{number}", ["validator", "run"], env)

    def _validator_indexes(self) -> range:
        first = self.config.first_validator_index
        return range(first, first + self.config.validators)

    def start_trainers(self) -> None:
        if any(role.red_team for role in self.config.trainers) and importlib.util.find_spec("bench") is None:
            raise DevnetError(f"dishonest trainers run from {RED_TEAM_TRAINER}, part of the development install")
        for offset, role in enumerate(self.config.trainers):
            prefix = "FLCHAIN_TRAINER_"
            env = {
                **self._common_env(prefix),
                f"{prefix}PRIVATE_KEY_ENV": "FLCHAIN_TRAINER_KEY",
                "FLCHAIN_TRAINER_KEY": dev_account(FIRST_TRAINER_INDEX + offset).key.hex(),
                f"{prefix}STATE_DIR": str(self.run_dir / "trainers" / role.name),
                f"{prefix}SHARD_INDEX": str(offset), f"{prefix}NUM_SHARDS": str(len(self.config.trainers)),
                f"{prefix}SEED": str(offset), f"{prefix}LOCAL_STEPS": str(self.config.local_steps),
                f"{prefix}LABEL_NOISE": str(role.label_noise), f"{prefix}POLL_INTERVAL_S": "1",
                f"{prefix}CLAIM_INTERVAL_S": "2", f"{prefix}SUBMIT_MARGIN_S": "2", f"{prefix}LOG_FORMAT": "plain",
                **prefixed(self.config.workload.trainer_env, prefix),
            }
            if role.red_team is None:
                self._service(role.name, ["trainer", "run"], env)
                continue
            env["FLCHAIN_REDTEAM_KIND"] = role.red_team  # a simulation: the dishonest node lives in the bench
            env["FLCHAIN_REDTEAM_COPYCAT_LEAD_S"] = str(max(3, self.config.commit_window_s // 3))
            self._service(role.name, ["run"], env, module=RED_TEAM_TRAINER)

    def up(self) -> StackInfo:
        """Run every step; on failure stop whatever was started and re-raise."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        steps = (self.start_chain, self.start_ipfs, self.deploy, self.create_task, self.start_api,
                 self.start_aggregator, self.start_validators, self.start_trainers)
        try:
            for step in steps:
                logger.info("up: %s", step.__name__.replace("_", " "))
                step()
                self.info.save()
        except BaseException:
            self.stop()
            raise
        return self.info

    # ------------------------------------------------------------ monitoring and stop
    def failed_service(self) -> tuple[str, ManagedProcess] | None:
        """The first service that exited with an error (a service that finished cleanly is not a failure)."""
        for name, proc in self.processes.items():
            code = proc.popen.poll()
            if code not in (None, 0):
                return name, proc
        return None

    def stop(self) -> None:
        """Stop services in reverse start order (trainers first, the chain last) by PID."""
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
            logger.info("down: stopped %s", name)

    # ------------------------------------------------------------ helpers
    def _common_env(self, prefix: str) -> dict[str, str]:
        return {
            f"{prefix}RPC_URL": self.info.rpc_url, f"{prefix}MANIFEST": self.info.manifest,
            f"{prefix}TASK_ID": str(self.info.task_id), f"{prefix}IPFS_URL": self.info.ipfs_url,
        }

    def _service(
        self, name: str, args: list[str], env: dict[str, str], ready: object = None, module: str = "flchain.cli"
    ) -> None:
        argv = [sys.executable, "-m", module, *args]
        probe = ready if callable(ready) else (lambda: True)
        proc = start_process(name, argv, self.logs / f"{name}.log", probe, env={**SERVICE_ENV, **env},
                             cwd=self.run_dir, ready_timeout_s=90.0)
        self._track(name, proc)

    def _track(self, name: str, proc: ManagedProcess) -> None:
        self.processes[name] = proc
        self.info.pids[name] = proc.pid


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def down(run_dir: Path, timeout_s: float = 15.0) -> list[str]:
    """Stop every process recorded in run_dir/stack.json by PID (its whole process group); returns their names."""
    info = StackInfo.load(run_dir)
    stopped = []
    for name, pid in reversed(list(info.pids.items())):
        if _signal_group(pid, signal.SIGINT if name == "ipfs" else signal.SIGTERM):
            stopped.append(name)
    deadline = time.monotonic() + timeout_s
    for pid in info.pids.values():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    for url in (info.rpc_url, info.ipfs_url, info.ipfs_direct_url, info.api_url):
        if url and port_is_open("127.0.0.1", int(url.rsplit(":", 1)[1])):
            logger.warning("something still listens on %s", url)
    (run_dir / "stack.json").unlink(missing_ok=True)
    return stopped


def _signal_group(pid: int, sig: int) -> bool:
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True
