"""`flchain api` (dashboard API, optionally with the indexer in-process) and `flchain index` (indexer alone).

Options override the FLCHAIN_API_* and FLCHAIN_INDEXER_* settings (environment variables).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from backend.core.config import ApiSettings, IndexerSettings
from backend.indexer.errors import ChainChanged

logger = logging.getLogger(__name__)

ManifestOpt = Annotated[
    Path | None, typer.Option("--manifest", help="Deployment manifest (FLCHAIN_INDEXER_MANIFEST_PATH).")
]
RpcOpt = Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC endpoint (FLCHAIN_INDEXER_RPC_URL).")]
DbOpt = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL, sqlite:///… or postgresql://…")]
IpfsOpt = Annotated[str | None, typer.Option("--ipfs-url", help="IPFS RPC API (FLCHAIN_INDEXER_IPFS_URL).")]
ResetOpt = Annotated[
    bool, typer.Option("--reset-on-chain-change", help="Wipe and reindex when the chain was reset (default: stop).")
]


def _indexer_settings(
    manifest: Path | None, rpc_url: str | None, database_url: str | None, ipfs_url: str | None, reset: bool
) -> IndexerSettings:
    overrides: dict[str, object] = {
        "manifest_path": manifest,
        "rpc_url": rpc_url,
        "database_url": database_url,
        "ipfs_url": ipfs_url,
    }
    if reset:
        overrides["reset_on_chain_change"] = True
    return IndexerSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


def index(
    manifest: ManifestOpt = None,
    rpc_url: RpcOpt = None,
    database_url: DbOpt = None,
    ipfs_url: IpfsOpt = None,
    reset_on_chain_change: ResetOpt = False,
) -> None:
    """Follow the coordinator's events into the database until SIGTERM."""
    from backend.serve import run_indexer_until_signal

    settings = _indexer_settings(manifest, rpc_url, database_url, ipfs_url, reset_on_chain_change)
    try:
        run_indexer_until_signal(settings)
    except ChainChanged as e:
        typer.echo(f"error: {e}", err=True)
        typer.echo(
            "the database belongs to another chain: point --database-url elsewhere, or pass "
            "--reset-on-chain-change to wipe and reindex",
            err=True,
        )
        raise typer.Exit(2) from e


def api(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (FLCHAIN_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port (FLCHAIN_API_PORT).")] = None,
    database_url: DbOpt = None,
    with_indexer: Annotated[
        bool | None, typer.Option("--indexer/--no-indexer", help="Run the indexer in this process too.")
    ] = None,
    manifest: ManifestOpt = None,
    rpc_url: RpcOpt = None,
    ipfs_url: IpfsOpt = None,
    reset_on_chain_change: ResetOpt = False,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="API worker processes (with --no-indexer only).")
    ] = None,
) -> None:
    """Serve the dashboard API and page (and, by default, index the chain in a background thread)."""
    from backend.serve import serve_api

    overrides = {
        "host": host,
        "port": port,
        "database_url": database_url,
        "run_indexer": with_indexer,
        "workers": workers,
    }
    api_settings = ApiSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    indexer_settings = None
    if api_settings.run_indexer:
        indexer_settings = _indexer_settings(
            manifest, rpc_url, database_url or api_settings.database_url, ipfs_url, reset_on_chain_change
        )
    serve_api(api_settings, indexer_settings)


db_app = typer.Typer(help="The index database's schema (Alembic migrations).", no_args_is_help=True)


def _database_url(database_url: str | None) -> str:
    return database_url or IndexerSettings().database_url


@db_app.command("upgrade")
def db_upgrade(database_url: DbOpt = None) -> None:
    """Create or upgrade the schema to the newest revision (FLCHAIN_INDEXER_DATABASE_URL by default).

    The indexer and the API do this at start; run it yourself to migrate before starting them."""
    from backend.db.migrate import current_revision, upgrade_schema
    from backend.db.session import make_engine

    engine = make_engine(_database_url(database_url))
    try:
        upgrade_schema(engine)
        with engine.connect() as connection:
            typer.echo(f"schema at revision {current_revision(connection)} (head) on {engine.url!r}")
    finally:
        engine.dispose()


@db_app.command("current")
def db_current(database_url: DbOpt = None) -> None:
    """Print the schema's revision; exit 1 unless it is the newest this flchain knows."""
    from backend.db.migrate import current_revision, head_revision
    from backend.db.session import make_engine

    engine = make_engine(_database_url(database_url))
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    finally:
        engine.dispose()
    head = head_revision()
    typer.echo(f"{current or 'none'} (head is {head})")
    if current != head:
        raise typer.Exit(1)


api_app = typer.Typer(help="The contribution dashboard: API server and chain indexer.", no_args_is_help=True)


@api_app.callback()
def _logging(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


api_app.command("api")(api)
api_app.command("index")(index)
api_app.add_typer(db_app, name="db")


if __name__ == "__main__":
    api_app()
