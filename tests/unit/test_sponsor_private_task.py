"""The sponsor's private-task options: a reader key file is made with its public key printed, readers parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flchain.privacy.keys import PASSWORD_ENV, load_reader_key, public_key_hex
from flchain.sponsor_cli import parse_reader, task_app


def test_reader_key_writes_an_encrypted_file_whose_public_key_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    out = tmp_path / "reader.pem"
    result = CliRunner().invoke(task_app, ["reader-key", "--out", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["public_key"] == public_key_hex(load_reader_key(key_file=out))
    assert "s3cret" not in result.output and oct(out.stat().st_mode & 0o777) == "0o600"


def test_reader_key_without_a_password_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    result = CliRunner().invoke(task_app, ["reader-key", "--out", str(tmp_path / "k.pem")])
    assert result.exit_code != 0 and not (tmp_path / "k.pem").exists()


def test_reader_options_parse_name_role_and_key_or_say_what_is_wrong() -> None:
    key = "0x" + "09" * 32
    entry = parse_reader(f"agg:aggregator:{key}")
    assert (entry.name, entry.role, entry.public_key) == ("agg", "aggregator", key)
    for bad in ("agg:aggregator", f"agg:auditor:{key}", "agg:validator:0x12"):
        with pytest.raises(typer.BadParameter, match="reader"):
            parse_reader(bad)
