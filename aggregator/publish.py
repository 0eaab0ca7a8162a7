"""Step 7 of a round: turn the outcome into the exact bytes the round publishes, then put them on IPFS.

`build_artifacts` is deterministic and does no I/O besides asking the CID of each blob (`cid_of`, an IPFS
`add(only_hash=True)`), so `flchain verify round` rebuilds byte-identical artifacts from the same outcome:

- the new global model (`encode_model`, parent = the round's base model);
- the payout tree (OpenZeppelin StandardMerkleTree `standard-v1` dump, canonical JSON; an empty round gets an
  empty dump and a zero root);
- the aggregator state the round leaves (`carryover.encode_state`);
- the score report (`RoundReport`, canonical JSON) referencing all of the above and the revealed evaluation batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aggregator.carryover import CarryState, encode_state
from aggregator.payouts import payout_values
from aggregator.pipeline import PipelineConfig, RoundOutcome, TrainerOutcome
from flchain.chain.types import Finalization
from flchain.codec import content_digest, encode_model
from flchain.explain import explain, rank_correlation
from flchain.merkle import DUMP_FORMAT, PAYOUT_LEAF_ENCODING, StandardMerkleTree
from flchain.ml.params import ParamLayout
from flchain.report import AggregationInfo, ModelMetrics, RoundReport, TrainerScore, ValueInfo, canonical_json
from flchain.storage.protocol import Storage

logger = logging.getLogger(__name__)

ZERO_ROOT = bytes(32)
CidOf = Callable[[bytes], str]


class PublishError(RuntimeError):
    """The daemon stored a blob under another CID than the one computed (and maybe committed) beforehand."""


@dataclass(frozen=True)
class RoundContext:
    """What the chain and the open step fixed about a round before any update arrived."""

    task_id: int
    round_id: int
    spec_hash: bytes
    base_digest: bytes
    base_cid: str
    eval_bytes: bytes
    eval_cid: str
    budget_wei: int


@dataclass(frozen=True)
class Blob:
    name: str
    data: bytes
    cid: str

    @property
    def digest(self) -> bytes:
        return content_digest(self.data)


@dataclass(frozen=True)
class RoundArtifacts:
    """Every blob a round publishes, and what goes into `finalizeRound`."""

    model: Blob
    tree: Blob
    state: Blob
    report: Blob
    eval: Blob
    payout_root: bytes
    payout_total_wei: int

    def blobs(self) -> tuple[Blob, ...]:
        return (self.eval, self.model, self.tree, self.state, self.report)

    def finalization(self) -> Finalization:
        return Finalization(
            new_model_digest=self.model.digest, new_model_cid=self.model.cid, report_digest=self.report.digest,
            report_cid=self.report.cid, eval_cid=self.eval.cid, payout_root=self.payout_root,
            payout_total_wei=self.payout_total_wei,
        )


def payout_tree(outcome: RoundOutcome) -> tuple[bytes, bytes]:
    """The payout tree's canonical JSON dump and its root (zero when nobody is paid)."""
    if not outcome.payouts:
        empty = {"format": DUMP_FORMAT, "leafEncoding": list(PAYOUT_LEAF_ENCODING), "tree": [], "values": []}
        return canonical_json(empty), ZERO_ROOT
    values = payout_values(outcome.task_id, outcome.round_id, outcome.payouts)
    tree = StandardMerkleTree.of(values, PAYOUT_LEAF_ENCODING)
    return canonical_json(tree.dump()), bytes.fromhex(tree.root[2:])


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def trainer_score(row: TrainerOutcome, budget_wei: int = 0, loss_reduction: float | None = None) -> TrainerScore:
    """The report's row of one trainer, with every term of its payout and the sentence that explains it."""
    explanation = explain(
        status=row.status, reason=None if row.reason is None else row.reason.value, reason_detail=row.detail or None,
        value_score=_finite(row.value_score), loss_reduction=loss_reduction, same_work_as=row.same_work_as,
        rating_weight=row.rating_weight, payout_wei=row.payout_wei, budget_wei=budget_wei, slash_bps=row.slash_bps,
    )
    return TrainerScore(
        account=row.account, digest="0x" + row.digest.hex(), cid=row.cid, num_samples=row.num_samples,
        block_number=row.block_number, log_index=row.log_index, status=row.status,
        reason=None if row.reason is None else row.reason.value, reason_detail=row.detail or None,
        update_norm=_finite(row.update_norm), loss_before=_finite(row.loss_before),
        loss_after=_finite(row.loss_after), loss_score=_finite(row.loss_score), loo_score=_finite(row.loo_score),
        rating_mu=row.rating.mu, rating_sigma=row.rating.sigma, final_score=row.final_score,
        payout_wei=str(row.payout_wei), payout_index=row.payout_index, slash_bps=row.slash_bps,
        slash_reason=row.slash_reason, aggregated=row.aggregated, value_score=_finite(row.value_score),
        same_work_as=row.same_work_as, rating_weight=row.rating_weight,
        budget_share=row.payout_wei / budget_wei if budget_wei > 0 else None, explanation=explanation,
    )


def value_info(outcome: RoundOutcome) -> ValueInfo | None:
    """How the values were estimated, and the fairness audit: Spearman(payout, leave-one-out) of the round."""
    if outcome.value_evaluations == 0:
        return None
    accepted = [row for row in outcome.trainers if row.loo_score is not None and math.isfinite(row.loo_score)]
    audit = rank_correlation([float(r.payout_wei) for r in accepted], [float(r.loo_score or 0) for r in accepted])
    return ValueInfo(
        method="exact" if outcome.value_exact else "sampled", evaluations=outcome.value_evaluations,
        permutations=outcome.value_permutations, loss_reduction=_finite(outcome.value_grand),
        spearman_payout_loo=audit,
    )


def aggregation_info(outcome: RoundOutcome, config: PipelineConfig) -> AggregationInfo:
    params = {k: float(v) for k, v in asdict(config.rule_params).items() if isinstance(v, int | float)}
    accepted = sum(row.status == "accepted" for row in outcome.trainers)
    return AggregationInfo(
        rule=config.rule.value, params=params, outer_lr=config.outer.lr, outer_momentum=config.outer.momentum,
        accepted=accepted, rejected=len(outcome.trainers) - accepted,
    )


def build_artifacts(
    outcome: RoundOutcome,
    ctx: RoundContext,
    config: PipelineConfig,
    layout: ParamLayout,
    metrics: ModelMetrics,
    cid_of: CidOf,
) -> RoundArtifacts:
    """The round's blobs, CIDs and finalization values (deterministic in its inputs)."""
    tensors = layout.unflatten(outcome.new_params)
    model_bytes = encode_model(tensors, spec_hash=ctx.spec_hash, base_digest=ctx.base_digest)
    model = Blob("model", model_bytes, cid_of(model_bytes))
    tree_bytes, root = payout_tree(outcome)
    tree = Blob("payout-tree", tree_bytes, cid_of(tree_bytes))
    carry = CarryState(outcome.ratings, outcome.fingerprints, outcome.state)
    state_bytes = encode_state(ctx.task_id, ctx.round_id, config, carry)
    state = Blob("aggregator-state", state_bytes, cid_of(state_bytes))
    report = RoundReport(
        task_id=ctx.task_id, round=ctx.round_id, base_model_digest="0x" + ctx.base_digest.hex(),
        base_model_cid=ctx.base_cid, new_model_digest="0x" + model.digest.hex(), new_model_cid=model.cid,
        eval_cid=ctx.eval_cid, eval_digest="0x" + content_digest(ctx.eval_bytes).hex(),
        model_spec_hash="0x" + ctx.spec_hash.hex(), budget_wei=str(ctx.budget_wei),
        payout_total_wei=str(outcome.payout_total_wei), payout_root="0x" + root.hex(), payout_tree_cid=tree.cid,
        aggregation=aggregation_info(outcome, config), metrics=metrics,
        trainers=tuple(trainer_score(row, ctx.budget_wei, _finite(outcome.value_grand)) for row in outcome.trainers),
        aggregator_state_cid=state.cid, aggregator_state_digest="0x" + state.digest.hex(), value=value_info(outcome),
    )
    report_bytes = report.to_bytes()
    return RoundArtifacts(
        model=model, tree=tree, state=state, report=Blob("report", report_bytes, cid_of(report_bytes)),
        eval=Blob("eval-batch", ctx.eval_bytes, ctx.eval_cid), payout_root=root,
        payout_total_wei=outcome.payout_total_wei,
    )


def publish_artifacts(storage: Storage, artifacts: RoundArtifacts) -> None:
    """Add and pin every blob (idempotent); the daemon must answer the CIDs computed beforehand."""
    for blob in artifacts.blobs():
        cid = storage.add(blob.data, pin=True)
        if cid != blob.cid:
            raise PublishError(f"{blob.name}: the daemon stored it as {cid}, expected {blob.cid}")
        logger.debug("published %s (%d bytes) as %s", blob.name, len(blob.data), cid)
