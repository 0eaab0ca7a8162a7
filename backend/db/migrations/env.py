"""Alembic environment of the index database.

`backend.db.migrate` runs it with an open connection (config.attributes["connection"]); the `alembic` command
line (alembic.ini at the repository root) runs it with `-x url=<SQLAlchemy URL>`, or FLCHAIN_INDEXER_DATABASE_URL.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from backend.core.config import DEFAULT_DATABASE_URL
from backend.db.models import Base
from backend.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "FLCHAIN_INDEXER_DATABASE_URL", DEFAULT_DATABASE_URL
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


run()
