"""Fetching and verifying a finalized round's score report and payout tree dump from IPFS.

Everything fetched is checked against what the chain committed to: the report's SHA-256 against reportDigest,
its task/round/root/total against the RoundFinalized event, the payout tree against payoutRoot (every node
re-hashed), and every report line that pays against its tree leaf. Network failures raise `ReportUnavailable`
(retried later), mismatches `ReportInvalid`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from eth_utils.address import is_address, to_checksum_address
from pydantic import ValidationError

from backend.indexer.errors import ReportInvalid, ReportUnavailable
from flchain.merkle import PAYOUT_LEAF_ENCODING, MerkleError, StandardMerkleTree
from flchain.report import RoundReport
from flchain.storage import ContentDigestMismatch, ContentTooLarge, InvalidCid, Storage, StorageError

ZERO_ROOT = "0x" + "00" * 32
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1  # INTEGER columns: 32 bits on PostgreSQL (SQLite would take 64)
HEX32_PATTERN = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class RoundCommitment:
    """What RoundFinalized committed to (read from the rounds table)."""

    task_id: int
    round: int
    report_cid: str
    report_digest: str
    payout_root: str
    payout_total_wei: int


@dataclass(frozen=True)
class PayoutLeaf:
    leaf_index: int
    account: str
    amount_wei: int
    proof: tuple[str, ...]


@dataclass(frozen=True)
class RoundDocuments:
    report: RoundReport
    payouts: tuple[PayoutLeaf, ...]


def finite(value: float | None) -> float | None:
    """The value, or None when it is NaN or infinite (JSON cannot carry those)."""
    return value if value is not None and math.isfinite(value) else None


def fetch_round_documents(storage: Storage, c: RoundCommitment, max_bytes: int) -> RoundDocuments:
    """The verified report and payout leaves (with proofs) of one finalized round."""
    report = _fetch_report(storage, c, max_bytes)
    _check_report(report, c)
    if c.payout_root == ZERO_ROOT and c.payout_total_wei == 0:
        return RoundDocuments(report=report, payouts=())
    tree = _fetch_tree(storage, report.payout_tree_cid, max_bytes)
    payouts = _payout_leaves(tree, c)
    _check_report_payouts(report, payouts)
    return RoundDocuments(report=report, payouts=payouts)


def _fetch_report(storage: Storage, c: RoundCommitment, max_bytes: int) -> RoundReport:
    try:
        data = storage.cat_verified(c.report_cid, bytes.fromhex(c.report_digest[2:]), max_bytes=max_bytes)
    except ContentDigestMismatch as e:
        raise ReportInvalid("bad_digest", f"report {c.report_cid}: {e}") from e
    except (InvalidCid, ContentTooLarge) as e:
        raise ReportInvalid("invalid", f"report {c.report_cid}: {e}") from e
    except StorageError as e:
        raise ReportUnavailable(f"report {c.report_cid}: {e}") from e
    try:
        return RoundReport.from_bytes(data)
    except ValidationError as e:
        raise ReportInvalid("invalid", f"report {c.report_cid} is not a score report: {e}") from e


def _check_report(report: RoundReport, c: RoundCommitment) -> None:
    problems = []
    if (report.task_id, report.round) != (c.task_id, c.round):
        problems.append(f"it is for task {report.task_id} round {report.round}")
    if report.payout_root.lower() != c.payout_root:
        problems.append(f"payout_root {report.payout_root} differs from the chain's {c.payout_root}")
    if not report.payout_total_wei.isdigit() or int(report.payout_total_wei) != c.payout_total_wei:
        problems.append(f"payout_total_wei {report.payout_total_wei} differs from the chain's {c.payout_total_wei}")
    for line in report.trainers:
        if not is_address(line.account):
            problems.append(f"account {line.account!r} is not an address")
        ints = (line.num_samples, line.block_number, line.log_index, line.payout_index or 0)
        small = (line.slash_bps, line.slash_reason or 0)
        if any(not 0 <= v <= INT64_MAX for v in ints) or any(not 0 <= v <= INT32_MAX for v in small):
            problems.append(f"line of {line.account} has out-of-range numbers")
        if not line.payout_wei.isdigit() or not HEX32_PATTERN.fullmatch(line.digest):
            problems.append(f"line of {line.account} has a malformed payout or digest")
    counts = (report.aggregation.accepted, report.aggregation.rejected)
    if not 0 <= report.metrics.eval_samples <= INT64_MAX or not report.budget_wei.isdigit():
        problems.append("metrics or budget out of range")
    if any(not 0 <= v <= INT32_MAX for v in counts):
        problems.append(f"accepted/rejected counts {counts} out of range")
    if problems:
        raise ReportInvalid("invalid", f"report of task {c.task_id} round {c.round}: " + "; ".join(problems))


def _fetch_tree(storage: Storage, cid: str, max_bytes: int) -> StandardMerkleTree:
    try:
        data = storage.cat(cid, max_bytes=max_bytes)
    except (InvalidCid, ContentTooLarge) as e:
        raise ReportInvalid("invalid", f"payout tree {cid}: {e}") from e
    except StorageError as e:
        raise ReportUnavailable(f"payout tree {cid}: {e}") from e
    try:
        dump = json.loads(data)
        if not isinstance(dump, dict):
            raise ReportInvalid("invalid", f"payout tree {cid} is not a JSON object")
        return StandardMerkleTree.load(dump)
    except (ValueError, MerkleError) as e:  # JSONDecodeError and MerkleError are ValueErrors
        raise ReportInvalid("invalid", f"payout tree {cid} is not a valid standard-v1 dump: {e}") from e


def _payout_leaves(tree: StandardMerkleTree, c: RoundCommitment) -> tuple[PayoutLeaf, ...]:
    where = f"payout tree of task {c.task_id} round {c.round}"
    if tree.root != c.payout_root:
        raise ReportInvalid("invalid", f"{where}: root {tree.root} is not the chain's {c.payout_root}")
    if tree.leaf_encoding != PAYOUT_LEAF_ENCODING:
        raise ReportInvalid("invalid", f"{where}: leaf encoding {list(tree.leaf_encoding)}")
    leaves = []
    for position, entry in enumerate(tree.values):
        task_id, round_id, index, account, amount = entry.value
        if (int(str(task_id)), int(str(round_id)), int(str(index))) != (c.task_id, c.round, position):
            raise ReportInvalid("invalid", f"{where}: leaf {position} is {list(entry.value)}")
        proof = tuple(tree.get_proof(position))
        leaves.append(PayoutLeaf(position, to_checksum_address(str(account)), int(str(amount)), proof))
    total = sum(leaf.amount_wei for leaf in leaves)
    if total != c.payout_total_wei:
        raise ReportInvalid(
            "invalid", f"{where}: leaves sum to {total}, the chain's payoutTotal is {c.payout_total_wei}"
        )
    return tuple(leaves)


def _check_report_payouts(report: RoundReport, payouts: tuple[PayoutLeaf, ...]) -> None:
    for line in report.trainers:
        if line.payout_index is None:
            continue
        leaf = payouts[line.payout_index] if line.payout_index < len(payouts) else None
        if leaf is None or leaf.account != to_checksum_address(line.account) or leaf.amount_wei != int(line.payout_wei):
            raise ReportInvalid(
                "invalid", f"report line of {line.account} (leaf {line.payout_index}) does not match the payout tree"
            )
