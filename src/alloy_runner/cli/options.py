"""Options and arguments that several commands share, and their values."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.cli.args import dir_path, file_path
from alloy_runner.exceptions import UsageError

if TYPE_CHECKING:
    from alloy_runner.build.job import Variable


def spool_dir(spool: Path | None, config_path: Path | None) -> Path:
    """Return the spool: the flag, else the config file's `spool_dir`, else the default."""
    if spool is not None:
        return spool
    from alloy_runner.config.load import find_and_load

    return find_and_load(config_path).spool_dir


def variables(plain: list[str] | None, masked: list[str] | None) -> list[Variable]:
    """Return the `--var` and `--masked-var` KEY=VALUE entries as job variables."""
    from alloy_runner.build.job import Variable

    out = []
    for entries, is_masked in ((plain or [], False), (masked or [], True)):
        for entry in entries:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                flag = "--masked-var" if is_masked else "--var"
                raise UsageError(f"{flag}: {entry!r} is not KEY=VALUE")
            out.append(Variable(key, value, public=not is_masked, masked=is_masked))
    return out


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        dest="config_path",
        type=file_path,
        metavar="FILE",
        help="config.toml whose spool_dir to use.",
    )


def add_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file",
        "-f",
        type=file_path,
        default=Path(".alloy-ci.yml"),
        metavar="FILE",
        help="The pipeline definition (default: .alloy-ci.yml).",
    )


def add_spool(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spool",
        type=dir_path,
        metavar="DIRECTORY",
        help="Spool directory (default: the config's spool_dir, else ~/.alloy-runner/spool).",
    )


def add_vars(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--var", dest="plain", action="append", metavar="KEY=VALUE", help="A job variable."
    )
    parser.add_argument(
        "--masked-var",
        dest="masked",
        action="append",
        metavar="KEY=VALUE",
        help="A job variable whose value never appears in logs.",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="Print one JSON document on stdout instead of text (see docs).",
    )


def print_json(document: object) -> None:
    """Print `document` as the one JSON document of a `--json` command."""
    import json

    print(json.dumps(document, indent=2))
