"""The round's artifacts: deterministic bytes, a report that references everything, claimable payout leaves."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from aggregator.carryover import decode_state
from aggregator.compute import build_artifacts
from aggregator.pipeline import PipelineConfig, run_round
from aggregator.publish import ZERO_ROOT, RoundArtifacts, RoundContext
from flchain.codec import content_digest, decode_model
from flchain.merkle import PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.ml.params import ParamLayout
from flchain.report import ModelMetrics, RoundReport
from flchain.storage import raw_cid_v1
from tests.unit.test_pipeline import DIM, _mixed_round, quadratic_loss

LAYOUT = ParamLayout(("w",), ((DIM,),))
CTX = RoundContext(task_id=1, round_id=1, spec_hash=b"\x05" * 32, base_digest=b"\x06" * 32, base_cid="bafybase",
                   eval_bytes=b"eval batch", eval_cid=raw_cid_v1(b"eval batch"), budget_wei=10**18)
METRICS = ModelMetrics(val_loss_before=2.0, val_accuracy_before=0.1, val_loss_after=1.5, val_accuracy_after=0.4,
                       eval_samples=100)


def _build(budget_wei: int = 10**18) -> RoundArtifacts:
    outcome = run_round(replace(_mixed_round(), budget_wei=budget_wei), quadratic_loss)
    return build_artifacts(outcome, replace(CTX, budget_wei=budget_wei), PipelineConfig(), LAYOUT, METRICS,
                           raw_cid_v1)


def test_the_same_round_gives_byte_identical_artifacts() -> None:
    first, second = _build(), _build()

    assert [(b.data, b.cid) for b in first.blobs()] == [(b.data, b.cid) for b in second.blobs()]
    assert first.finalization() == second.finalization()


def test_report_references_every_published_blob_by_digest_or_cid() -> None:
    artifacts = _build()

    report = RoundReport.from_bytes(artifacts.report.data)
    f = artifacts.finalization()

    assert report.new_model_digest == "0x" + content_digest(artifacts.model.data).hex()
    assert f.new_model_digest == content_digest(artifacts.model.data)
    assert report.payout_tree_cid == artifacts.tree.cid and report.payout_root == "0x" + f.payout_root.hex()
    assert report.aggregator_state_cid == artifacts.state.cid
    assert report.aggregator_state_digest == "0x" + content_digest(artifacts.state.data).hex()
    assert report.eval_digest == "0x" + content_digest(b"eval batch").hex() and f.eval_cid == CTX.eval_cid
    assert int(report.payout_total_wei) == f.payout_total_wei == sum(int(t.payout_wei) for t in report.trainers)
    decoded = decode_model(artifacts.model.data, expected_spec_hash=CTX.spec_hash, expected_shapes={"w": (DIM,)})
    assert decoded.header.base_digest == CTX.base_digest
    assert decode_state(artifacts.state.data).round_id == 1


def test_every_paid_trainer_can_prove_its_leaf_against_the_root() -> None:
    artifacts = _build()
    report = RoundReport.from_bytes(artifacts.report.data)

    tree = StandardMerkleTree.load(json.loads(artifacts.tree.data))

    paid = [row for row in report.trainers if int(row.payout_wei) > 0]
    assert paid and tree.root == report.payout_root
    for row in paid:
        value = (1, 1, row.payout_index, row.account, int(row.payout_wei))
        assert StandardMerkleTree.verify(tree.root, PAYOUT_LEAF_ENCODING, value, tree.get_proof(value))


def test_a_round_that_pays_nobody_has_a_zero_root_and_an_empty_tree() -> None:
    artifacts = _build(budget_wei=0)

    assert artifacts.payout_root == ZERO_ROOT and artifacts.payout_total_wei == 0
    assert json.loads(artifacts.tree.data)["values"] == []
    assert np.all([row.payout_wei == "0" for row in RoundReport.from_bytes(artifacts.report.data).trainers])
