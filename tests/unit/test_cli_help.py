"""Every command and option of `orderpay` says what it does; nothing points at a document the
repository does not have."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
Option = tuple[str, argparse.Action]


def _walk(parser: argparse.ArgumentParser, path: str = "orderpay") -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def _commands(parser: argparse.ArgumentParser, path: str = "orderpay") -> Iterator[tuple[str, str | None]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield f"{path} {name}", helps.get(name)
                yield from _commands(child, f"{path} {name}")


OPTIONS = list(_walk(build_parser()))


def _name(item: tuple[str, argparse.Action]) -> str:
    path, action = item
    return f"{path} {'/'.join(action.option_strings) or action.dest}"


def test_the_walk_sees_every_command() -> None:
    commands = {path for path, _ in _commands(build_parser())}
    assert {
        "orderpay dev",
        "orderpay demo",
        "orderpay loadtest",
        "orderpay keys init",
        "orderpay orders list",
    } <= (commands)
    assert len(OPTIONS) > 60


@pytest.mark.parametrize("item", OPTIONS, ids=_name)
def test_every_option_has_help(item: tuple[str, argparse.Action]) -> None:
    _, action = item
    assert action.help, f"{_name(item)} has no help text"
    assert action.help != argparse.SUPPRESS


@pytest.mark.parametrize(
    "item",
    [item for item in OPTIONS if item[1].default not in (None, False, "", argparse.SUPPRESS)],
    ids=_name,
)
def test_every_default_is_stated(item: tuple[str, argparse.Action]) -> None:
    _, action = item
    text = action.help or ""
    assert "%(default)" in text or "default" in text, f"{_name(item)} does not say its default"


@pytest.mark.parametrize(("path", "text"), list(_commands(build_parser())), ids=str)
def test_every_command_has_help(path: str, text: str | None) -> None:
    assert text, f"`{path}` has no help line in its parent's list"


def test_version_and_help_run_as_commands() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "clients.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"orderpay \d+\.\d+\.\d+\S*\n", version.stdout)

    dev = subprocess.run(
        [sys.executable, "-m", "clients.cli", "dev", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert dev.returncode == 0
    assert "make run" in dev.stdout  # a description, not just a usage line
    assert "--sandbox-listen HOST:PORT" in dev.stdout
    assert "port 0 = any free port" in dev.stdout


# Built from parts, so this file does not match itself.
DANGLING = re.compile(r"\b" + "SP" + r"EC\b|\bthe " + "sp" + r"ec\b")


def test_nothing_refers_to_a_spec_the_repository_does_not_have() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split("\0")
    found = []
    for name in filter(None, tracked):
        path = ROOT / name
        if (
            path.suffix not in {".py", ".md", ".proto", ".toml", ".html", ".txt", ".json", ""}
            or not path.is_file()
        ):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if DANGLING.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []
