"""Options and arguments that several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from alloy_runner.build.job import Variable


def spool_dir(spool: Path | None, config_path: Path | None) -> Path:
    """Return the spool: the flag, else the config file's `spool_dir`, else the default."""
    if spool is not None:
        return spool
    from alloy_runner.config.load import find_and_load

    return find_and_load(config_path).spool_dir


def variables(plain: tuple[str, ...], masked: tuple[str, ...]) -> list[Variable]:
    from alloy_runner.build.job import Variable

    out = []
    for entries, is_masked in ((plain, False), (masked, True)):
        for entry in entries:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"{entry!r} is not KEY=VALUE")
            out.append(Variable(key, value, public=not is_masked, masked=is_masked))
    return out


config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config.toml whose spool_dir to use.",
)
file_option = click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".alloy-ci.yml"),
    show_default=True,
    help="The pipeline definition.",
)
spool_option = click.option(
    "--spool",
    type=click.Path(file_okay=False, path_type=Path),
    help="Spool directory (default: the config's spool_dir, else ~/.alloy-runner/spool).",
)
var_options = [
    click.option("--var", "plain", multiple=True, metavar="KEY=VALUE", help="A job variable."),
    click.option(
        "--masked-var",
        "masked",
        multiple=True,
        metavar="KEY=VALUE",
        help="A job variable whose value never appears in logs.",
    ),
]
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout instead of text (see docs).",
)


def print_json(document: object) -> None:
    """Print `document` as the one JSON document of a `--json` command."""
    import json

    click.echo(json.dumps(document, indent=2))
