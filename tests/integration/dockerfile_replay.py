"""Replaying a Dockerfile target without a Docker engine: a clean virtualenv, a folder holding only what the
target COPYs, and the target's own `pip install` commands.

`parse` reads the instructions (ARG, FROM … AS, ENV, WORKDIR, COPY, RUN, ENTRYPOINT, CMD; the rest are recorded
and ignored), `Target` follows a target's FROM chain back to its base image, and `replay` builds it:

- `python3 -m venv DIR` becomes a fresh `python -m venv` of this machine's Python (the images' Python is 3.11 too);
- every `pip install …` runs with the venv's pip in the copied folder, with the Dockerfile's ENV;
- the one mapped step: pip's `--index-url https://download.pytorch.org/…` is dropped, because that host cannot be
  reached here; the pinned `torch==2.13.0` spec is kept, and pip finds that CPU wheel on this machine's disk;
- `python -m flchain.…` build steps (the Shakespeare texts' fetch) run with the venv's Python; an absolute path
  under `/opt/flchain-data` (in the step's arguments and in ENV values) stands for the same path under the
  replay's `fs/` folder, so the image's data is where its environment says;
- system steps an unprivileged replay cannot and need not take (apt-get, useradd, mkdir, chown, rm, the `if`
  around apt) are skipped; any other command fails the replay, so a new install step is never silently ignored.

Targets share a venv when their COPYs and install steps (venv, pip) are the same; `build_steps` then runs each
target's own later steps (data fetches) into that venv's `fs/` folder.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SKIPPED_COMMANDS = ("apt-get", "useradd", "mkdir", "chown", "rm", "if", "fi", "then")
UNREACHABLE_INDEXES = ("https://download.pytorch.org/",)
IMAGE_DATA_DIR = "/opt/flchain-data"
"""The image's data folder (build-time downloads); replayed as `<root>/fs/opt/flchain-data`."""


class ReplayError(RuntimeError):
    """The Dockerfile holds something this replay does not know how to follow, or a replayed step failed."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """One build target, flattened: its COPYs, RUNs, ENV, WORKDIR, ENTRYPOINT and CMD along the FROM chain."""

    name: str
    copies: tuple[tuple[tuple[str, ...], str, bool], ...]  # (sources, destination under /app, destination is a dir)
    runs: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]

    @property
    def recipe(self) -> tuple[object, ...]:
        """What the installed venv depends on: targets with the same recipe share one replayed venv."""
        return (self.copies, tuple(s for s in _segments(self.runs) if _is_install(s)))


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def _substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def parse(path: Path) -> dict[str, Stage]:
    """The Dockerfile's stages by name (ARG defaults substituted)."""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in _logical_lines(path.read_text()):
        keyword, _, argument = line.partition(" ")
        keyword, argument = keyword.upper(), argument.strip()
        if keyword == "ARG":
            name, _, default = argument.partition("=")
            args[name] = _substitute(default, args)
        elif keyword == "FROM":
            parts = _substitute(argument, args).split()
            if len(parts) != 3 or parts[1].upper() != "AS":
                raise ReplayError(f"FROM without a stage name: {line!r}")
            stage = Stage(parts[2], parts[0])
            stages[stage.name] = stage
        elif stage is None:
            raise ReplayError(f"{keyword} before the first FROM")
        else:
            stage.instructions.append(Instruction(keyword, _substitute(argument, args)))
    return stages


def _env_pairs(argument: str) -> list[tuple[str, str]]:
    return [(key, value) for key, _, value in (token.partition("=") for token in shlex.split(argument))]


def target(stages: dict[str, Stage], name: str) -> Target:
    chain: list[Stage] = []
    current: str | None = name
    while current in stages:
        chain.insert(0, stages[current])
        current = stages[current].base
    if not chain:
        raise ReplayError(f"no stage {name!r}")
    copies: list[tuple[tuple[str, ...], str, bool]] = []
    runs: list[str] = []
    env: dict[str, str] = {}
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir = "/"
    for instruction in (i for stage in chain for i in stage.instructions):
        keyword, argument = instruction.keyword, instruction.argument
        if keyword == "COPY":
            if argument.startswith("--"):
                raise ReplayError(f"COPY flags are not replayed: {argument!r}")
            *sources, destination = shlex.split(argument)
            into_dir = destination.endswith("/") or destination == "." or len(sources) > 1
            copies.append((tuple(sources), os.path.relpath(os.path.join(workdir, destination), "/app"), into_dir))
        elif keyword == "RUN":
            runs.append(argument)
        elif keyword == "ENV":
            env.update(_env_pairs(argument))
        elif keyword == "WORKDIR":
            workdir = argument
        elif keyword == "ENTRYPOINT":
            entrypoint = tuple(json.loads(argument))
        elif keyword == "CMD":
            cmd = tuple(json.loads(argument))
    return Target(name, tuple(copies), tuple(runs), tuple(sorted(env.items())), entrypoint, cmd)


def copy_context(image: Target, context: Path, app_dir: Path) -> None:
    """A folder holding only the paths the target COPYs (without __pycache__, as .dockerignore says)."""
    for sources, destination, into_dir in image.copies:
        into = app_dir / destination
        for source in sources:
            origin = context / source
            if origin.is_dir():  # Docker copies a directory's contents
                shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                into.mkdir(parents=True, exist_ok=True) if into_dir else into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into / origin.name if into_dir else into)


def _pip_arguments(segment: str) -> list[str]:
    words = shlex.split(segment)[2:]
    kept: list[str] = []
    skip_next = False
    for i, word in enumerate(words):
        if skip_next:
            skip_next = False
            continue
        if word == "--index-url" and i + 1 < len(words) and words[i + 1].startswith(UNREACHABLE_INDEXES):
            skip_next = True  # the one mapped step (module docstring)
            continue
        kept.append(word)
    return kept


def _segments(runs: tuple[str, ...]) -> list[str]:
    return [s.strip() for run in runs for s in run.split("&&") if s.strip()]


def _is_install(segment: str) -> bool:
    words = shlex.split(segment)
    return words[:2] == ["pip", "install"] or words[1:3] == ["-m", "venv"]


def _is_build_step(segment: str) -> bool:
    words = shlex.split(segment)
    return len(words) >= 3 and words[0] in ("python", "python3") and words[1] == "-m" \
        and words[2].startswith("flchain.")


def image_path(value: str, root: Path) -> str:
    """`value` with the image's data folder replaced by its replayed place under `root`."""
    if value == IMAGE_DATA_DIR or value.startswith(IMAGE_DATA_DIR + "/"):
        return str(root / "fs") + value
    return value


def replay(image: Target, context: Path, root: Path) -> Path:
    """Build the target's venv under `root` (its install steps; see `build_steps` for the rest); returns the venv's
    bin directory."""
    app_dir, venv = root / "app", root / "venv"
    copy_context(image, context, app_dir)
    env = {**image_env(image, venv), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for segment in _segments(image.runs):
        command = shlex.split(segment)[:3]
        if command[:2] == ["pip", "install"]:
            _run([str(venv / "bin" / "pip"), "install", *_pip_arguments(segment)], app_dir, env)
        elif len(command) >= 3 and command[1:3] == ["-m", "venv"]:
            _run([sys.executable, "-m", "venv", str(venv)], root, env)
        elif not _is_build_step(segment) and command[0] not in SKIPPED_COMMANDS:
            raise ReplayError(f"unknown install step in target {image.name}: {segment!r}")
    return venv / "bin"


def build_steps(image: Target, bin_dir: Path) -> None:
    """Run the target's `python -m flchain.…` build steps with the replayed venv (data paths mapped)."""
    root = bin_dir.parent.parent
    env = {**image_env(image, bin_dir.parent), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for segment in filter(_is_build_step, _segments(image.runs)):
        _, *args = shlex.split(segment)
        _run([str(bin_dir / "python"), *(image_path(a, root) for a in args)], root, env)


def image_env(image: Target, venv: Path) -> dict[str, str]:
    """The process environment of the image: its ENV (PATH pointing at the replayed venv), nothing of ours."""
    env = {key: image_path(value, venv.parent) for key, value in image.env if key != "PATH"}
    keep = {key: os.environ[key] for key in ("HOME", "LANG", "TMPDIR") if key in os.environ}
    pip = {key: value for key, value in os.environ.items() if key.startswith("PIP_")}  # this machine's wheel sources
    return {**keep, **pip, **env, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"}


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        output = result.stdout[-3000:] + result.stderr[-3000:]
        raise ReplayError(f"{' '.join(argv)} failed ({result.returncode}):\n{output}")
