"""A private task on a real Anvil chain and IPFS daemon: trainers seal their updates for the task's readers.

Two honest trainers (the real trainer node, which reads the readers from the task card and seals) and one trainer
that ignores the task's privacy and reveals a clear-text update take part in one round of a task with central
differential privacy (DP-FedAvg). What is on IPFS is ciphertext, the clear-text update is `unreadable` (not paid,
not scored), the honest ones are paid, the report states ε; a reader recomputes the round — DP noise included —
with `flchain verify round --reader-key-env`, a non-reader is told it cannot.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from aggregator.bootstrap import build_aggregator, connect_task, model_runtime
from aggregator.evaldata import ValidationSource
from aggregator.settings import AggregatorSettings
from aggregator.verify import VerifyError, verify_round
from flchain.chain.client import CoordinatorClient, TokenClient, connect
from flchain.chain.deploy import deploy_contracts
from flchain.chain.events import EventReader
from flchain.chain.tasklog import TaskLog
from flchain.chain.types import RoundStatus
from flchain.codec import read_header
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, advance_time
from flchain.devnet.ipfs import IpfsNode
from flchain.ml.specs import spec_from_name
from flchain.privacy.dp import DpConfig, epsilon_after
from flchain.privacy.envelope import is_envelope, open_envelope, parse_envelope
from flchain.privacy.errors import ReaderKeyError
from flchain.privacy.keys import public_key_hex
from flchain.report import RoundReport
from flchain.sponsor import TaskTerms, create_task
from flchain.storage import IpfsClient
from flchain.taskcard import ReaderEntry
from tests.integration.test_aggregator_round import (
    AGGREGATOR_INDEX,
    COMMIT_WINDOW_S,
    MIN_STAKE_WEI,
    REVEAL_WINDOW_S,
    REWARD_PER_ROUND_WEI,
    TRAINER_FUNDS_WEI,
    Role,
    Stage,
    aggregator_env,
    digits_train_file,
    drive,
    round_is_open,
    verify_cli,
)
from trainer.node import RoundOutcome, run_trainer
from trainer.runtime import StopToken
from trainer.settings import TrainerSettings
from trainer.setup import trainer_node

pytestmark = pytest.mark.integration

HONEST = (Role(1, 0), Role(2, 1))
CLEAR = Role(3, 2)  # reveals its update in the clear although the task is private
READER_KEY_ENV = "TEST_READER_KEY"
AGGREGATOR_READER = X25519PrivateKey.generate()
VALIDATOR_READER = X25519PrivateKey.generate()  # a second reader: every update must be sealed for it too
DP = DpConfig(mode="central", clip_norm=1.0, noise_multiplier=0.5, delta=1e-5, expected_trainers=2)


@pytest.fixture
def stage(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    monkeypatch.setenv("TEST_AGGREGATOR_KEY", dev_account(AGGREGATOR_INDEX).key.hex())
    monkeypatch.setenv(READER_KEY_ENV, AGGREGATOR_READER.private_bytes_raw().hex())
    for role in (*HONEST, CLEAR):
        monkeypatch.setenv(f"TEST_TRAINER_KEY_{role.account_index}", dev_account(role.account_index).key.hex())
    w3 = connect(anvil.rpc_url)
    deployment = deploy_contracts(w3, dev_account(0))
    client = CoordinatorClient(w3, deployment.coordinator, dev_account(0))
    token = TokenClient(w3, deployment.token, dev_account(0))
    token.mint(dev_account(0).address, 100 * REWARD_PER_ROUND_WEI)
    for role in (*HONEST, CLEAR):
        token.mint(role.address, TRAINER_FUNDS_WEI)
    terms = TaskTerms(REWARD_PER_ROUND_WEI, MIN_STAKE_WEI, 10 * REWARD_PER_ROUND_WEI, commit_window_s=COMMIT_WINDOW_S,
                      reveal_window_s=REVEAL_WINDOW_S)
    readers = (ReaderEntry(name="aggregator", role="aggregator", public_key=public_key_hex(AGGREGATOR_READER)),
               ReaderEntry(name="validator-1", role="validator", public_key=public_key_hex(VALIDATOR_READER)))
    with IpfsClient(ipfs.api_url) as storage:
        created = create_task(client, storage, token=deployment.token, spec=spec_from_name("mlp-digits"),
                              terms=terms, aggregators=[dev_account(AGGREGATOR_INDEX).address], readers=readers,
                              dp=DP)
    yield Stage(anvil.rpc_url, ipfs.api_url, deployment.manifest.save(tmp_path / "deployment.json"),
                created.task_id, client, digits_train_file(tmp_path / "digits-train.npz"), tmp_path)


def run_trainer_role(stage: Stage, role: Role, stop: StopToken) -> RoundOutcome:
    values: dict[str, object] = {
        "rpc_url": stage.rpc_url, "manifest": stage.manifest_path, "task_id": stage.task_id,
        "ipfs_url": stage.ipfs_url, "state_dir": stage.root / f"trainer-{role.account_index}",
        "private_key_env": f"TEST_TRAINER_KEY_{role.account_index}", "data_source": "file",
        "data_path": stage.train_file, "shard_index": role.shard, "num_shards": 3,
        "local_steps": 10, "batch_size": 32, "lr": 0.1, "device": "cpu", "max_rounds": 1,
        "poll_interval_s": 0.1, "submit_margin_s": 1.0, "log_format": "plain",
    }
    with trainer_node(TrainerSettings(**values), stop) as node:  # type: ignore[arg-type]
        assert len(node.readers) == 2  # read from the task card
        summary = run_trainer(node if role is not CLEAR else dataclasses.replace(node, readers=()))
    [(_, outcome)] = summary.outcomes
    return outcome


def run_round(stage: Stage, log: TaskLog, round_id: int) -> dict[str, RoundOutcome]:
    stop = StopToken()
    roles = (*HONEST, CLEAR)
    with ThreadPoolExecutor(max_workers=len(roles)) as pool:
        futures = {role.address: pool.submit(run_trainer_role, stage, role, stop) for role in roles}
        deadline = time.monotonic() + 300
        while True:
            log.refresh()
            if len(log.commitments(round_id)) == len(roles):
                break
            if time.monotonic() > deadline:
                stop.request()
                raise AssertionError("trainers did not commit in time")
            time.sleep(0.2)
        advance_time(stage.rpc_url, COMMIT_WINDOW_S + 1)
        outcomes = {address: f.result(timeout=300) for address, f in futures.items()}
    advance_time(stage.rpc_url, REVEAL_WINDOW_S + 1)
    return outcomes


def test_a_private_round_seals_updates_rejects_clear_text_and_verifies_for_a_reader_only(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the aggregator, a reader of the task through its reader key in the environment.
    env = aggregator_env(stage, stage.root / "aggregator", 1) | {"FLCHAIN_AGGREGATOR_READER_KEY_ENV": READER_KEY_ENV}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aggregator = build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
    chain = stage.sponsor
    log = TaskLog(chain.w3, EventReader(chain.w3, chain.contract), stage.task_id, 0)

    # Execute: one round; the aggregator finalizes it.
    drive(aggregator, partial(round_is_open, chain, stage.task_id, 1))
    outcomes = run_round(stage, log, 1)
    drive(aggregator, lambda: chain.round_status(stage.task_id, 1) is RoundStatus.FINALIZED)

    # Assert: what IPFS holds of the honest trainers is ciphertext for both readers; each reader can open it.
    assert set(outcomes.values()) == {RoundOutcome.REVEALED}, outcomes
    log.refresh()
    reveals = {u.trainer: u for u in log.reveals(1)}
    with IpfsClient(stage.ipfs_url) as storage:
        for role in HONEST:
            sealed = storage.cat_verified(reveals[role.address].cid, reveals[role.address].digest)
            assert is_envelope(sealed) and len(parse_envelope(sealed).readers) == 2
            frames = {open_envelope(sealed, key) for key in (AGGREGATOR_READER, VALIDATOR_READER)}
            assert len(frames) == 1
            assert read_header(frames.pop()).spec_hash == spec_from_name("mlp-digits").spec_hash()
        report = RoundReport.from_bytes(storage.cat(log.finalizations[1].report_cid))
    rows = {row.account: row for row in report.trainers}
    assert all(int(rows[role.address].payout_wei) > 0 for role in HONEST)
    assert rows[CLEAR.address].reason == "unreadable" and int(rows[CLEAR.address].payout_wei) == 0
    assert (rows[CLEAR.address].reason_detail or "").startswith("not_sealed")
    assert not chain.is_slashed(stage.task_id, 1, CLEAR.address)
    assert report.privacy is not None and report.privacy.mode == "central"
    assert report.privacy.epsilon == pytest.approx(epsilon_after(0.5, 1, 1e-5))

    # Assert: a reader recomputes the round; anyone else is told the task is private.
    exit_code, output = verify_cli(stage, 1, "--reader-key-env", READER_KEY_ENV)
    assert exit_code == 0 and "round verified" in output, output
    exit_code, output = verify_cli(stage, 1)
    assert exit_code == 2 and "private" in output, output
    parts = connect_task(stage.rpc_url, stage.manifest_path, stage.task_id)
    with IpfsClient(stage.ipfs_url) as storage:
        as_validator = model_runtime(parts, storage, stage.task_id, None, ValidationSource.DIGITS, None, 1,
                                     VALIDATOR_READER)
        assert verify_round(parts.coordinator, parts.log, storage, as_validator, stage.task_id, 1).ok  # every reader
        runtime = model_runtime(parts, storage, stage.task_id, None, ValidationSource.DIGITS, None, 1,
                                X25519PrivateKey.generate())
        with pytest.raises(VerifyError, match="private"):
            verify_round(parts.coordinator, parts.log, storage, runtime, stage.task_id, 1)

    # Assert: an aggregator of a private task without a reader key refuses to start.
    monkeypatch.delenv("FLCHAIN_AGGREGATOR_READER_KEY_ENV")
    with pytest.raises(ReaderKeyError, match="no reader key"):
        build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
