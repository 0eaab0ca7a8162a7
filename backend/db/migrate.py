"""Creating and upgrading the index database's schema through Alembic (revisions in backend/db/migrations).

`upgrade_schema` brings any database to the newest revision: an empty one is built revision by revision; one built
by create_all before migrations existed (flchain tables, no alembic_version) is adopted by stamping the baseline,
then upgraded. On PostgreSQL an advisory lock serializes concurrent upgrades (an indexer and an API starting
together). `require_current_schema` is for processes that must not migrate (extra API workers).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from backend.db.models import Base

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "5b1e0d3c7a21"
# The tables create_all built before migrations existed: all present and no alembic_version = adopt by stamping.
PRE_MIGRATION_TABLES = frozenset(
    {
        "checkpoint",
        "raw_events",
        "tasks",
        "trainers",
        "rounds",
        "report_fetches",
        "round_reports",
        "submissions",
        "reputations",
        "claims",
        "slashes",
        "score_entries",
        "payouts",
    }
)
UPGRADE_LOCK_KEY = 0x666C_6368_6169_6E  # "flchain": pg_advisory_xact_lock key of schema upgrades


class SchemaError(RuntimeError):
    """The database's schema cannot be used or upgraded as it is."""


class SchemaNotCurrent(SchemaError):
    """The database is not at the newest revision (and this process does not migrate)."""


class UnknownSchema(SchemaError):
    """The database holds some flchain tables but neither a migration version nor the whole pre-migration set."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for our migrations; with `connection`, commands run on it (in its transaction)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise SchemaError(f"no migration revisions in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine) -> None:
    """Create or upgrade `engine`'s schema to the newest revision, adopting a pre-migration database."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # SQLite alters a table by copying it; its foreign keys are switched off for that, per connection
            _set_sqlite_foreign_keys(connection, on=False)
        try:
            with connection.begin():
                before, after = _upgrade(connection)
        finally:
            if sqlite:
                _set_sqlite_foreign_keys(connection, on=True)
    if after != before:
        logger.info("database schema upgraded from %s to %s", before or "nothing", after)


def _set_sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")  # no effect inside a transaction
    connection.commit()


def _upgrade(connection: Connection) -> tuple[str | None, str | None]:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
    before = current_revision(connection)
    if before is None:
        _adopt_pre_migration_tables(connection)
    command.upgrade(alembic_config(connection), "head")
    return before, current_revision(connection)


def _adopt_pre_migration_tables(connection: Connection) -> None:
    existing = set(inspect(connection).get_table_names()) & PRE_MIGRATION_TABLES
    if not existing:
        return
    missing = PRE_MIGRATION_TABLES - existing
    if missing:
        raise UnknownSchema(
            f"the database has flchain tables {sorted(existing)} but not {sorted(missing)} and no migration version: "
            "it was not built by flchain; point the indexer at an empty database (the index is rebuilt from the chain)"
        )
    logger.info("adopting a database built before migrations: stamping the baseline revision %s", BASELINE_REVISION)
    command.stamp(alembic_config(connection), BASELINE_REVISION)


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at the newest revision."""
    with engine.connect() as connection:
        current = current_revision(connection)
    head = head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"the database schema is at revision {current or 'none'}, this flchain needs {head}: "
            "run `flchain db upgrade` (or start the indexer, which upgrades it)"
        )


def schema_differences(connection: Connection) -> list[Any]:
    """What differs between the database and the models: Alembic's autogenerate comparison, plus column collations
    on PostgreSQL (which autogenerate does not compare); [] when equal."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [*compare_metadata(context, Base.metadata), *_collation_differences(connection)]


def _collation_differences(connection: Connection) -> list[tuple[str, str, str, str | None, str | None]]:
    if connection.dialect.name != "postgresql":
        return []
    rows = connection.execute(
        text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        )
    )
    actual = {(table, column): collation for table, column, collation in rows}
    differences = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            wanted = getattr(column.type.dialect_impl(connection.dialect), "collation", None)
            found = actual.get((table.name, column.name))
            if (table.name, column.name) in actual and wanted != found:
                differences.append(("modify_collation", table.name, column.name, found, wanted))
    return differences
