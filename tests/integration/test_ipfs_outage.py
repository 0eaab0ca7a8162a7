"""An IPFS outage across the reveal deadline is not the trainers' fault: the round waits for storage to return.

The daemon is stopped in the reveal phase, after the honest trainers uploaded and revealed, and started again (same
repo, same port) a few seconds after the reveal deadline, while the aggregator's collect step is retrying. The round
must finalize with every honest update fetched and paid, none recorded as missing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.bootstrap import build_aggregator
from aggregator.settings import AggregatorSettings
from flchain.chain.types import RoundStatus
from flchain.devnet.anvil import AnvilNode
from flchain.devnet.ipfs import IpfsNode, start_ipfs
from tests.integration.test_aggregator_round import (
    HONEST,
    Stage,
    aggregator_env,
    drive,
    make_stage,
    published_reports,
    round_is_open,
    use_keys,
)
from tests.integration.test_hostile_trainer import run_honest

pytestmark = pytest.mark.integration
OUTAGE_AFTER_DEADLINE_S = 3.0


class RestartableIpfs:
    """An IPFS daemon of this test's own that can be stopped and started again on the same repo and port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node: IpfsNode = start_ipfs(root / "repo", root / "ipfs.log")

    def stop(self) -> None:
        self.node.stop()

    def restart(self) -> None:
        self.node = start_ipfs(self.root / "repo", self.root / "ipfs-restarted.log", api_port=self.node.api_port)


@pytest.fixture
def own_ipfs(tmp_path: Path) -> Iterator[RestartableIpfs]:
    daemon = RestartableIpfs(tmp_path / "ipfs")
    try:
        yield daemon
    finally:
        daemon.stop()


def test_a_round_spanning_an_ipfs_outage_finalizes_with_every_honest_update_fetched_and_paid(
    anvil: AnvilNode, own_ipfs: RestartableIpfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: one task, an aggregator allowed to wait 120 s for storage in its collect step.
    use_keys(monkeypatch)
    stage: Stage = make_stage(anvil, own_ipfs.node, tmp_path)
    env = aggregator_env(stage, tmp_path / "aggregator", 1) | {"FLCHAIN_AGGREGATOR_COLLECT_OUTAGE_BUDGET_S": "120"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aggregator = build_aggregator(AggregatorSettings())  # type: ignore[call-arg]
    drive(aggregator, lambda: round_is_open(stage.sponsor, stage.task_id, 1))

    # Execute: the honest trainers commit, then upload and reveal; storage goes down in the reveal phase, the reveal
    # phase ends, storage comes back while collect retries.
    run_honest(stage, 1, in_commit_phase=lambda: own_ipfs.stop)
    restarter = threading.Timer(OUTAGE_AFTER_DEADLINE_S, own_ipfs.restart)
    restarter.start()
    try:
        drive(aggregator, lambda: stage.sponsor.round_status(stage.task_id, 1) is RoundStatus.FINALIZED,
              max_ticks=100)
    finally:
        restarter.join()

    # Assert: every honest update was fetched, accepted and paid; nobody is "missing".
    (report,) = published_reports(stage, 1)
    rows = {row.account: row for row in report.trainers}
    for role in HONEST[:2]:
        assert rows[role.address].reason is None, rows[role.address].reason_detail
        assert int(rows[role.address].payout_wei) > 0
