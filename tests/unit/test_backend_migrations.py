"""Alembic migrations of the index database, on SQLite and PostgreSQL: an empty database upgraded to head matches
the models; a database built by create_all before migrations existed is adopted without losing a row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from backend.cli import db_app
from backend.db.migrate import (
    BASELINE_REVISION,
    SchemaNotCurrent,
    UnknownSchema,
    alembic_config,
    current_revision,
    head_revision,
    require_current_schema,
    schema_differences,
    upgrade_schema,
)
from backend.db.models import Base, Round, Task, Trainer
from backend.db.session import make_engine, session_factory
from backend.indexer.projector import apply_event
from tests.conftest import Databases
from tests.unit.test_backend_indexer import ALICE, BOB, ev, story

PRE_MIGRATION_DDL = Path(__file__).parent / "data"
# Two addresses whose order differs between byte order ("0xA…" < "0xa…") and a case-insensitive locale
UPPER_FIRST, LOWER_SECOND = "0xAB00000000000000000000000000000000000000", "0xaa00000000000000000000000000000000000000"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def build_pre_migration_database(engine: Engine) -> None:
    """What `init_db` (create_all) built before migrations: the DDL it emitted then, frozen in tests/unit/data."""
    lines = (PRE_MIGRATION_DDL / f"pre_migration_{engine.dialect.name}.sql").read_text().splitlines()
    ddl = "\n".join(line for line in lines if not line.startswith("--"))
    statements = [s.strip() for s in ddl.split(";") if s.strip()]
    assert len(statements) == 28  # 13 tables and 15 indexes
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            table.name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


def test_an_empty_database_upgraded_to_head_matches_the_models(engine: Engine) -> None:
    upgrade_schema(engine)

    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert schema_differences(connection) == []


WEI_ZERO = "0" * 78
PRE_MIGRATION_ROWS = {  # rows as the pre-migration indexer stored them (single submission window)
    "raw_events": [
        {"tx_hash": "0x" + "aa" * 32, "log_index": 0, "block_number": 3, "block_hash": "0x" + "bb" * 32,
         "name": "TaskCreated", "args": '{"taskId": 1}'},
        {"tx_hash": "0x" + "aa" * 32, "log_index": 1, "block_number": 3, "block_hash": "0x" + "bb" * 32,
         "name": "RoundOpened", "args": '{"taskId": 1, "round": 1}'},
    ],
    "tasks": [
        {"task_id": 1, "sponsor": ALICE, "token": BOB, "reward_per_round_wei": "0" * 75 + "100",
         "min_stake_wei": "0" * 77 + "1", "window_s": 60, "finalize_timeout_s": 600, "unstake_cooldown_s": 30,
         "max_slash_bps": 5000, "model_spec_hash": "0x" + "01" * 32, "initial_model_digest": "0x" + "02" * 32,
         "initial_model_cid": "bafkinit", "aggregators": "[]", "pool_wei": WEI_ZERO, "owed_wei": WEI_ZERO,
         "total_staked_wei": WEI_ZERO, "funded_wei": WEI_ZERO, "reclaimed_wei": WEI_ZERO, "current_round": 1,
         "closed": False, "created_block": 3, "created_tx": "0x" + "aa" * 32},
    ],
    "rounds": [
        {"task_id": 1, "round": 1, "base_model_digest": "0x" + "02" * 32, "base_model_cid": "bafkinit",
         "eval_commitment": "0x" + "03" * 32, "window_end": 1_000, "opened_block": 3, "opened_tx": "0x" + "aa" * 32,
         "submissions": 0, "finalized": False, "payout_total_wei": WEI_ZERO, "claimed_wei": WEI_ZERO},
    ],
}


def insert_pre_migration_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        for table, rows in PRE_MIGRATION_ROWS.items():
            for row in rows:
                columns = ", ".join(row)
                values = ", ".join(f":{name}" for name in row)
                connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)


def test_a_pre_migration_database_is_adopted_without_losing_a_row(engine: Engine) -> None:
    build_pre_migration_database(engine)
    insert_pre_migration_rows(engine)

    upgrade_schema(engine)

    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert schema_differences(connection) == []
    after = dump(engine)
    assert {name: len(after[name]) for name in PRE_MIGRATION_ROWS} == {"raw_events": 2, "tasks": 1, "rounds": 1}
    with session_factory(engine)() as session:  # the rows read through today's models, new columns zero-filled
        task = session.get(Task, 1)
        opened = session.get(Round, (1, 1))
    assert task is not None and task.reward_per_round_wei == 100 and task.commit_window_s == 0
    assert task.swept_wei == 0 and task.close_requested is False
    assert opened is not None and opened.base_model_cid == "bafkinit" and opened.commit_deadline == 0


def test_after_the_upgrade_addresses_sort_in_byte_order_on_every_database(engine: Engine) -> None:
    build_pre_migration_database(engine)
    upgrade_schema(engine)
    with session_factory(engine).begin() as session:
        apply_event(session, story()[0])
        for i, who in enumerate((LOWER_SECOND, UPPER_FIRST, ALICE, BOB)):
            apply_event(session, ev("Staked", 10 + i, taskId=1, trainer=who, amount=5, stakeAfter=5))

    with session_factory(engine)() as session:
        ordered = list(session.scalars(select(Trainer.address).order_by(Trainer.address)))

    assert ordered == sorted(ordered) and len(ordered) == 4  # Python compares code points: byte order for ASCII


def test_upgrading_twice_changes_nothing_and_downgrade_to_base_and_back_works(engine: Engine) -> None:
    upgrade_schema(engine)
    upgrade_schema(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
        tables_after_downgrade = connection.execute(text("SELECT 1 FROM alembic_version")).all()
    upgrade_schema(engine)

    with engine.connect() as connection:
        assert tables_after_downgrade == [] and schema_differences(connection) == []


def test_some_flchain_tables_without_a_version_are_refused_and_left_alone(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE checkpoint (id INTEGER PRIMARY KEY)")

    with pytest.raises(UnknownSchema, match="not built by flchain"):
        upgrade_schema(engine)

    with engine.connect() as connection:
        assert current_revision(connection) is None


def test_a_process_that_must_not_migrate_refuses_an_outdated_schema(engine: Engine) -> None:
    with pytest.raises(SchemaNotCurrent, match="flchain db upgrade"):
        require_current_schema(engine)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), BASELINE_REVISION)
    with pytest.raises(SchemaNotCurrent, match=BASELINE_REVISION):
        require_current_schema(engine)

    upgrade_schema(engine)

    require_current_schema(engine)


def test_db_upgrade_and_current_commands(databases: Databases) -> None:
    url = databases.url("cli")
    runner = CliRunner()

    before = runner.invoke(db_app, ["current", "--database-url", url])
    upgraded = runner.invoke(db_app, ["upgrade", "--database-url", url])
    after = runner.invoke(db_app, ["current", "--database-url", url])

    assert before.exit_code == 1 and before.output.startswith("none")
    assert upgraded.exit_code == 0 and head_revision() in upgraded.output
    assert after.exit_code == 0 and after.output.startswith(head_revision())
    password = url.split(":")[2].split("@")[0] if databases.kind == "postgresql" else None
    assert password is None or password not in upgraded.output
