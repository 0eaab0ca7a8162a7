"""Settings of the two backend services: the indexer (FLCHAIN_INDEXER_*) and the API (FLCHAIN_API_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///flchain-index.sqlite3"


class IndexerSettings(BaseSettings):
    """Where the chain, the deployment manifest, the database and IPFS are, and how to follow the chain."""

    model_config = SettingsConfigDict(env_prefix="FLCHAIN_INDEXER_", extra="ignore")

    rpc_url: str = "http://127.0.0.1:8545"
    manifest_path: Path = Path("deployment.json")
    database_url: str = DEFAULT_DATABASE_URL
    ipfs_url: str = "http://127.0.0.1:5001"
    ipfs_timeout_s: float = Field(default=10.0, gt=0)
    confirmations: int = Field(default=2, ge=0, le=1_000)
    batch_blocks: int = Field(default=2_000, ge=1, le=100_000)
    poll_interval_s: float = Field(default=2.0, gt=0)
    max_batches_per_poll: int = Field(default=50, ge=1)
    report_retry_base_s: float = Field(default=5.0, gt=0)
    report_retry_max_s: float = Field(default=300.0, gt=0)
    report_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    reset_on_chain_change: bool = False


class ApiSettings(BaseSettings):
    """How the dashboard API listens and which browser origins may call it."""

    model_config = SettingsConfigDict(env_prefix="FLCHAIN_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    database_url: str = DEFAULT_DATABASE_URL
    cors_origins: list[str] = Field(default_factory=list)
    run_indexer: bool = True
    workers: int = Field(default=1, ge=1, le=64)  # API processes; more than 1 only with --no-indexer
    db_threads: int | None = Field(default=None, ge=1, le=256)  # DB query threads; None: by database (serve.py)
    response_cache_mib: int = Field(default=64, ge=0, le=65_536)  # per worker; 0: no cache (SQLite files, PostgreSQL)
    log_level: str = "info"
