"""A hostile trainer, written only against the coordinator's ABI and the IPFS RPC API, cannot stop or skew a round.

Two honest trainers (the real trainer loop) and five hostile accounts share two commit-reveal rounds on a real Anvil
chain and IPFS daemon. Each hostile account uploads raw bytes over the IPFS RPC API, commits to them on-chain in the
commit phase and reveals them in the reveal phase (a commitment to any bytes can be revealed): the header-integer
bomb, deep nesting in the header, a pickle, bytes over the size cap, a truncated payload, NaN values, a wrong shape,
a wrong digest and a CID nobody serves. Every round must finalize, the honest trainers must be paid, every hostile
submission must get its reason, and every provably malformed one must be slashed, once.
"""

from __future__ import annotations

import json
import logging
import pickle
import struct
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from aggregator.bootstrap import build_aggregator
from aggregator.collect import max_update_bytes
from aggregator.settings import AggregatorSettings
from flchain.chain.client import CoordinatorClient
from flchain.chain.commitment import new_salt, update_commitment
from flchain.chain.types import RoundStatus
from flchain.codec import content_digest, encode_update
from flchain.devnet.accounts import dev_account
from flchain.devnet.anvil import AnvilNode, advance_time
from flchain.devnet.ipfs import IpfsNode
from flchain.ml.params import ParamLayout, module_to_params
from flchain.ml.specs import spec_from_name
from flchain.storage import IpfsClient
from tests.integration.test_aggregator_round import (
    COMMIT_WINDOW_S,
    HONEST,
    MIN_STAKE_WEI,
    REVEAL_WINDOW_S,
    TRAINER_FUNDS_WEI,
    Role,
    Stage,
    aggregator_env,
    drive,
    make_stage,
    published_reports,
    round_is_open,
    use_keys,
)
from trainer.node import RoundOutcome, run_trainer
from trainer.runtime import StopToken
from trainer.settings import TrainerSettings
from trainer.setup import trainer_node

pytestmark = pytest.mark.integration

HOSTILE_ACCOUNTS = (4, 5, 7, 8, 9)
ROUNDS = 2
PHASE_TIMEOUT_S = 300

Reveal = Callable[[], None]


def submit_raw(
    stage: Stage, account_index: int, round_id: int, digest: bytes, cid: str, num_samples: int
) -> Reveal:
    """The one place a test sends an update on-chain (the coordinator's calls, signed raw): commits to `digest` now
    (in the commit phase) and returns the reveal of `digest`, `cid` and `num_samples`, to call in the reveal phase."""
    client = CoordinatorClient(stage.sponsor.w3, stage.sponsor.contract.address, dev_account(account_index))
    salt = new_salt()
    chain_id = int(client.w3.eth.chain_id)
    client.commit_update(stage.task_id, round_id, update_commitment(
        chain_id, client.address, stage.task_id, round_id, client.account, digest, salt))

    def reveal() -> None:
        client.reveal_update(stage.task_id, round_id, digest, salt, cid, num_samples)
    return reveal


@dataclass(frozen=True)
class Attack:
    name: str
    reason: str
    slash_code: int | None


def _frame(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


def _with_inner_header(valid: bytes, inner_text: str) -> bytes:
    size = struct.unpack_from("<Q", valid)[0]
    outer = json.loads(valid[8 : 8 + size])
    outer["__metadata__"]["flchain.header"] = inner_text
    return _frame(json.dumps(outer).encode(), valid[8 + size :])


def _payloads(layout: ParamLayout, spec_hash: bytes, base: bytes) -> dict[str, bytes]:
    zeros = {n: np.full(s, 1e-3, dtype=np.float32) for n, s in zip(layout.names, layout.shapes, strict=True)}
    valid = encode_update(zeros, spec_hash=spec_hash, base_digest=base)
    inner = json.loads(json.loads(valid[8 : 8 + struct.unpack_from("<Q", valid)[0]])["__metadata__"]["flchain.header"])
    nan = dict(zeros)
    nan[layout.names[0]] = np.full(layout.shapes[0], np.nan, dtype=np.float32)
    wrong = {n: np.zeros((*s, 2), dtype=np.float32) for n, s in zip(layout.names, layout.shapes, strict=True)}
    return {
        "integer_bomb": _with_inner_header(valid, json.dumps(inner)[:-1] + ',"x":' + "9" * 5000 + "}"),
        "deep_nesting": _frame(b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        "pickle": pickle.dumps({"weights": [1.0] * 10}),
        "oversized": b"\0" * (max_update_bytes(layout) + 1),
        "truncated": valid[: len(valid) // 2],
        "nan": encode_update(nan, spec_hash=spec_hash, base_digest=base, allow_non_finite=True),
        "wrong_shape": encode_update(wrong, spec_hash=spec_hash, base_digest=base),
        "wrong_digest": valid,
    }


ATTACKS = (
    Attack("integer_bomb", "undecodable", 4), Attack("deep_nesting", "undecodable", 4),
    Attack("pickle", "undecodable", 4), Attack("oversized", "undecodable", 4),
    Attack("truncated", "undecodable", 4), Attack("nan", "non_finite", 3),
    Attack("wrong_shape", "wrong_shape", 4), Attack("wrong_digest", "digest_mismatch", 1),
    Attack("missing_cid", "missing", None),
)


def _hostile_round(stage: Stage, storage: IpfsClient, round_id: int, attacks: tuple[Attack, ...],
                   layout: ParamLayout) -> Reveal:
    """In the commit phase: each hostile account uploads its bytes and commits; returns their reveals."""
    reveals: list[Reveal] = []
    spec_hash = spec_from_name("mlp-digits").spec_hash()
    base = stage.sponsor.get_round(stage.task_id, round_id).base_model_digest
    payloads = _payloads(layout, spec_hash, base)
    for account, attack in zip(HOSTILE_ACCOUNTS, attacks, strict=False):
        if attack.name == "missing_cid":
            data = f"never uploaded {round_id}".encode()
            cid, digest = storage.add(data, only_hash=True), content_digest(data)
        else:
            data = payloads[attack.name]
            cid = storage.add(data, pin=True)
            digest = b"\x42" * 32 if attack.name == "wrong_digest" else content_digest(data)
        reveals.append(submit_raw(stage, account, round_id, digest, cid, 10**9))

    def reveal_all() -> None:
        for reveal in reveals:
            reveal()
    return reveal_all


def _nothing() -> Reveal:
    return lambda: None


def run_honest(stage: Stage, round_id: int, in_commit_phase: Callable[[], Reveal] = _nothing) -> None:
    """The first two honest roles run the real trainer loop for the open round, concurrently, through both phases.
    Once both committed, `in_commit_phase` runs and the commit phase ends; once both revealed, what it returned runs
    and the reveal phase ends. A failure stops the trainers (they would otherwise wait for a phase that never comes)."""
    stop = StopToken()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_run_one_round, stage, role, stop) for role in HONEST[:2]]
        try:
            _await_commitments(stage, round_id, futures)
            in_reveal_phase = in_commit_phase()
            advance_time(stage.rpc_url, COMMIT_WINDOW_S + 1)
            outcomes = [f.result(timeout=PHASE_TIMEOUT_S) for f in futures]
        except BaseException:
            stop.request()
            raise
    assert outcomes == [RoundOutcome.REVEALED] * 2
    in_reveal_phase()
    advance_time(stage.rpc_url, REVEAL_WINDOW_S + 1)


def _await_commitments(stage: Stage, round_id: int, futures: list[Future[RoundOutcome]]) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    addresses = [role.address for role in HONEST[:2]]
    while not all(stage.sponsor.get_commitment(stage.task_id, round_id, a).committed for a in addresses):
        assert time.monotonic() < deadline, "the honest trainers did not commit in time"
        for future in futures:
            assert not future.done(), f"a trainer ended in the commit phase: {future.result()}"
        time.sleep(0.2)


def _run_one_round(stage: Stage, role: Role, stop: StopToken) -> RoundOutcome:
    values: dict[str, object] = {
        "rpc_url": stage.rpc_url, "manifest": stage.manifest_path, "task_id": stage.task_id,
        "ipfs_url": stage.ipfs_url, "state_dir": stage.root / f"trainer-{role.account_index}",
        "private_key_env": f"TEST_TRAINER_KEY_{role.account_index}", "data_source": "file",
        "data_path": stage.train_file, "shard_index": role.shard, "num_shards": len(HONEST),
        "local_steps": 10, "batch_size": 32, "lr": 0.1, "device": "cpu", "max_rounds": 1,
        "poll_interval_s": 0.1, "submit_margin_s": 1.0, "log_format": "plain",
    }
    with trainer_node(TrainerSettings(**values), stop) as node:  # type: ignore[arg-type]
        [(_, outcome)] = run_trainer(node).outcomes
    return outcome


def _stake_hostile(stage: Stage) -> None:
    token = stage.sponsor.token(stage.task_id)
    for index in HOSTILE_ACCOUNTS:
        account = dev_account(index)
        if token.balance_of(account.address) < TRAINER_FUNDS_WEI:
            token.mint(account.address, TRAINER_FUNDS_WEI)
        client = CoordinatorClient(stage.sponsor.w3, stage.sponsor.contract.address, account)
        client.stake(stage.task_id, 3 * MIN_STAKE_WEI)  # still registered after a round-1 slash


def _finalized_and_settled(stage: Stage, round_id: int, slashable: list[int]) -> Callable[[], bool]:
    def done() -> bool:
        chain = stage.sponsor
        return all(chain.is_slashed(stage.task_id, round_id, dev_account(i).address) for i in slashable)
    return done


@pytest.fixture
def stage(anvil: AnvilNode, ipfs: IpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stage:
    use_keys(monkeypatch)
    return make_stage(anvil, ipfs, tmp_path)


def test_hostile_submissions_get_their_reasons_are_slashed_once_and_honest_trainers_are_paid(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the aggregator with a 2 s fetch budget (what a CID nobody serves may cost), five staked hostiles.
    env = aggregator_env(stage, stage.root / "aggregator", ROUNDS) | {"FLCHAIN_AGGREGATOR_FETCH_TIMEOUT_S": "2"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aggregator = build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
    _stake_hostile(stage)
    layout = ParamLayout.of(module_to_params(spec_from_name("mlp-digits").build()))
    plan = {1: ATTACKS[:5], 2: ATTACKS[5:]}
    finish_s: list[float] = []

    # Execute: each round the honest trainers train, commit and reveal; the hostile accounts commit to their bytes
    # in the commit phase and reveal them in the reveal phase.
    with IpfsClient(stage.ipfs_url) as storage:
        for round_id, attacks in plan.items():
            drive(aggregator, partial(round_is_open, stage.sponsor, stage.task_id, round_id))
            run_honest(stage, round_id, partial(_hostile_round, stage, storage, round_id, attacks, layout))
            slashable = [i for i, a in zip(HOSTILE_ACCOUNTS, attacks, strict=False) if a.slash_code]
            started = time.monotonic()
            drive(aggregator, _finalized_and_settled(stage, round_id, slashable), max_ticks=200)
            finish_s.append(time.monotonic() - started)

    # Assert: each round finalized on time (chain time: within the task's finalize timeout after the reveal
    # deadline), honest trainers paid, each hostile row has its reason and slash code.
    chain = stage.sponsor
    timeout_s = chain.get_task(stage.task_id).finalize_timeout_s
    for round_id in plan:
        state = chain.get_round(stage.task_id, round_id)
        assert chain.round_status(stage.task_id, round_id) is RoundStatus.FINALIZED
        assert state.reveal_deadline <= state.finalized_at <= state.reveal_deadline + timeout_s, state
    for report in published_reports(stage, ROUNDS):
        rows = {row.account: row for row in report.trainers}
        assert all(int(rows[role.address].payout_wei) > 0 for role in HONEST[:2]), report.round
        for index, attack in zip(HOSTILE_ACCOUNTS, plan[report.round], strict=False):
            row = rows[dev_account(index).address]
            assert (row.reason, row.slash_reason, int(row.payout_wei)) == (attack.reason, attack.slash_code, 0), (
                attack, row.reason_detail)
            assert chain.is_slashed(stage.task_id, report.round, row.account) == (attack.slash_code is not None)
    logging.getLogger(__name__).info("seconds from reveal deadline to settled, per round: %s", finish_s)
    # Assert: slashed once: a second pass of the settle step changes nothing.
    stakes = [chain.get_trainer(stage.task_id, dev_account(i).address).stake_wei for i in HOSTILE_ACCOUNTS]
    aggregator.tick()
    assert stakes == [chain.get_trainer(stage.task_id, dev_account(i).address).stake_wei for i in HOSTILE_ACCOUNTS]
