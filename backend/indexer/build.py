"""Wiring an `Indexer` from its settings: manifest, RPC connection, event reader, database and IPFS client."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import IndexerSettings
from backend.db.session import init_db, make_engine, session_factory
from backend.indexer.checkpoint import ChainIdentity
from backend.indexer.service import Indexer
from backend.indexer.status import IndexerStatus
from flchain.chain.client import CoordinatorClient, connect
from flchain.chain.events import EventReader
from flchain.chain.manifest import DeploymentManifest
from flchain.storage import IpfsClient


def build_indexer(
    settings: IndexerSettings,
    *,
    sessions: sessionmaker[Session] | None = None,
    status: IndexerStatus | None = None,
) -> Indexer:
    """An indexer for the deployment in `settings.manifest_path` (checked against the chain and the ABI)."""
    manifest = DeploymentManifest.load(settings.manifest_path)
    manifest.check_artifacts()
    w3 = connect(settings.rpc_url, expected_chain_id=manifest.chain_id)
    coordinator = CoordinatorClient(w3, manifest.coordinator.address)
    if sessions is None:
        engine = make_engine(settings.database_url)
        init_db(engine)
        sessions = session_factory(engine)
    storage = IpfsClient(settings.ipfs_url, timeout_s=settings.ipfs_timeout_s, max_read_bytes=settings.report_max_bytes)
    identity = ChainIdentity(
        chain_id=manifest.chain_id, coordinator=coordinator.address, deploy_block=manifest.deploy_block
    )
    return Indexer(
        settings,
        w3=w3,
        reader=EventReader(w3, coordinator.contract),
        identity=identity,
        sessions=sessions,
        storage=storage,
        status=status,
    )
