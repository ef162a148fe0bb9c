"""The `alloy-runner` command group; a known error becomes one line on stderr and exit 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from alloy_runner.exceptions import AlloyRunnerError
from alloy_runner.version import build_info

if TYPE_CHECKING:
    from alloy_runner.build.job import Variable
    from alloy_runner.config import Config

EXIT_USAGE = 2


def _fail(message: str) -> None:
    click.echo(f"alloy-runner: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="alloy-runner", message="%(prog)s\n" + "", prog_name="alloy-runner"
)
def cli() -> None:
    """A CI runner built to be watched."""


def _version_callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(build_info().banner())
        ctx.exit(0)


# Replace click's one-line version with the build banner (GitLab Runner's `--version`).
cli.params = [p for p in cli.params if p.name != "version"]
cli.params.append(
    click.Option(
        ["--version", "-v"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_version_callback,
        help="Show the version and build information.",
    )
)


@cli.command()
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config.toml to use (default: ~/.alloy-runner/config.toml; as root /etc/alloy-runner).",
)
@click.option(
    "--metrics-server",
    "--listen-address",
    "metrics_server",
    help="[host]:<port> for /metrics; empty disables. Wins over $METRICS_SERVER and the file.",
)
@click.option(
    "--spool",
    type=click.Path(file_okay=False, path_type=Path),
    help="Spool directory of the runners without a url (wins over spool_dir in the file).",
)
@click.option(
    "--web.config.file",
    "web_config",
    metavar="PATH",
    help="exporter-toolkit web config (TLS, basic auth) for the metrics server; empty: none. "
    "Wins over metrics_web_config in the file.",
)
@click.option(
    "--profiling-server",
    "profiling_server",
    metavar="URL",
    help="Pyroscope URL to push continuous profiles to; empty: off. "
    "Wins over $PYROSCOPE_SERVER_ADDRESS and [profiling] server_address.",
)
def run(
    config_path: Path | None, metrics_server: str | None, spool: Path | None,
    web_config: str | None, profiling_server: str | None,
) -> None:  # fmt: skip
    """Run the runner: take jobs and serve metrics until a signal stops it."""
    from alloy_runner import daemon
    from alloy_runner.config import find_and_load

    config = find_and_load(config_path)
    env_address = os.environ.get("METRICS_SERVER")
    override = metrics_server if metrics_server is not None else env_address
    if override is not None:
        config = config.with_overrides(metrics_server=override)
    _check_address(config, from_flag=metrics_server is not None, from_env=env_address is not None)
    if spool is not None:
        config = config.with_overrides(spool_dir=spool)
    if web_config is not None:
        config = config.with_overrides(metrics_web_config=Path(web_config) if web_config else None)
    pyroscope = os.environ.get("PYROSCOPE_SERVER_ADDRESS")
    where = "--profiling-server" if profiling_server is not None else "PYROSCOPE_SERVER_ADDRESS"
    if profiling_server is not None:
        pyroscope = profiling_server
    if pyroscope is not None:
        config = config.with_overrides(profiling=config.profiling.with_server(pyroscope, where))
    daemon.run(config)


def _check_address(config: Config, *, from_flag: bool, from_env: bool) -> None:
    """Say where a bad metrics address came from: the flag, the environment or the file."""
    from alloy_runner.exceptions import AddressError
    from alloy_runner.telemetry.address import parse_address

    try:
        parse_address(config.metrics_server)
    except AddressError as exc:
        if from_flag:
            origin = "--metrics-server"
        elif from_env:
            origin = "$METRICS_SERVER"
        else:
            origin = f"{config.path}: key 'metrics_server'"
        raise AddressError(f"{origin}: {exc}") from None


def _spool_dir(spool: Path | None, config_path: Path | None) -> Path:
    """Return the spool: the flag, else the config file's `spool_dir`, else the default."""
    if spool is not None:
        return spool
    from alloy_runner.config import find_and_load

    return find_and_load(config_path).spool_dir


def _variables(plain: tuple[str, ...], masked: tuple[str, ...]) -> list[Variable]:
    from alloy_runner.build.job import Variable

    out = []
    for entries, is_masked in ((plain, False), (masked, True)):
        for entry in entries:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"{entry!r} is not KEY=VALUE")
            out.append(Variable(key, value, public=not is_masked, masked=is_masked))
    return out


_config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config.toml whose spool_dir to use.",
)
_file_option = click.option(
    "--file",
    "-f",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".alloy-ci.yml"),
    show_default=True,
    help="The pipeline definition.",
)
_spool_option = click.option(
    "--spool",
    type=click.Path(file_okay=False, path_type=Path),
    help="Spool directory (default: the config's spool_dir, else ~/.alloy-runner/spool).",
)
_var_options = [
    click.option("--var", "plain", multiple=True, metavar="KEY=VALUE", help="A job variable."),
    click.option(
        "--masked-var",
        "masked",
        multiple=True,
        metavar="KEY=VALUE",
        help="A job variable whose value never appears in logs.",
    ),
]


@cli.command()
@_file_option
@_spool_option
@_config_option
@_var_options[0]
@_var_options[1]
@click.option("--wait", is_flag=True, help="Wait for the pipeline to end; exit 1 if it failed.")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="Seconds --wait waits at most.")  # fmt: skip
@click.argument("jobs", nargs=-1)
def submit(
    file: Path, spool: Path | None, config_path: Path | None, plain: tuple[str, ...],
    masked: tuple[str, ...], wait: bool, timeout: float, jobs: tuple[str, ...],
) -> None:  # fmt: skip
    """Put the pipeline of a .alloy-ci.yml (or only the named JOBS) into the spool."""
    from alloy_runner.coordinator.spool import Spool
    from alloy_runner.pipeline import submit as submitting
    from alloy_runner.pipeline.ci_yaml import load_pipeline

    spec = load_pipeline(file)
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    the_spool = Spool(_spool_dir(spool, config_path))
    pipeline_id, planned = submitting.submit(
        the_spool, spec, file.resolve().parent, names=jobs, variables=_variables(plain, masked)
    )
    click.echo(f"pipeline {pipeline_id}: {len(planned)} job(s) in {the_spool.root}")
    for p in planned:
        click.echo(f"  job {p.job.id} {p.job.name} (stage {p.job.stage})")
    if wait:
        allowed = {p.job.id for p in planned if p.spec.allow_failure}
        sys.exit(_wait(the_spool, [p.job.id for p in planned], allowed, timeout))


def _wait(spool: Any, ids: list[int], allowed: set[int], timeout: float) -> int:
    """Wait for every job; return 1 if one failed that was not allowed to, as the spool judges."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = [spool.result(i) for i in ids]
        if all(r is not None for r in results):
            failed = False
            for job_id, result in zip(ids, results, strict=True):
                allowed_failure = job_id in allowed and result["status"] != "success"
                note = " (allowed to fail)" if allowed_failure else ""
                click.echo(f"job {job_id} {result['name']}: {result['status']}{note}")
                failed |= result["status"] not in ("success", "skipped") and not allowed_failure
            return 1 if failed else 0
        time.sleep(0.05)
    click.echo(f"alloy-runner: error: the pipeline did not end within {timeout:g}s", err=True)
    return EXIT_USAGE


@cli.command()
@click.argument("job_id", type=int)
@_spool_option
@_config_option
def cancel(job_id: int, spool: Path | None, config_path: Path | None) -> None:
    """Cancel a job of the spool: a waiting one at once, a running one through its runner."""
    from alloy_runner.coordinator.spool import Spool

    the_spool = Spool(_spool_dir(spool, config_path))
    the_spool.ensure()
    what = the_spool.cancel(job_id)
    if what == "unknown":
        raise click.BadParameter(f"job {job_id} is not in {the_spool.root}")
    click.echo(f"job {job_id}: {what}")


@cli.group(name="exec")
def exec_group() -> None:
    """Run one job of the local .alloy-ci.yml in the foreground."""


@exec_group.command(name="shell")
@click.argument("job")
@_file_option
@_var_options[0]
@_var_options[1]
@click.option("--builds-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the build runs (default ~/.alloy-runner/builds/exec).")  # fmt: skip
@click.option("--timeout", type=int, help="Job timeout in seconds (default: the job's own).")
def exec_shell(
    job: str, file: Path, plain: tuple[str, ...], masked: tuple[str, ...],
    builds_dir: Path | None, timeout: int | None,
) -> None:  # fmt: skip
    """Run JOB with the shell executor, with its live log and a stage-by-stage progress display."""
    from alloy_runner.exec_local import exec_job

    sys.exit(exec_job(job, file, _variables(plain, masked), builds_dir, timeout))


_edit_config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="config.toml to edit (default: $CONFIG_FILE, else ~/.alloy-runner/config.toml).",
)


@cli.command()
@_edit_config_option
@click.option("--url", "-u", required=True, help="The coordinator's URL.")
@click.option("--registration-token", "-r", required=True, help="The coordinator's token.")
@click.option("--name", "-n", required=True, help="The runner's name (unique in the file).")
@click.option("--executor", type=click.Choice(["shell"]), default="shell", show_default=True)
@click.option("--limit", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--request-concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--tls-ca-file", default="", help="CA certificates that verify the coordinator.")
def register(
    config_path: Path | None, url: str, registration_token: str, name: str, executor: str,
    limit: int, request_concurrency: int, tls_ca_file: str,
) -> None:  # fmt: skip
    """Register a runner with a coordinator and add it to config.toml (comments are kept)."""
    from alloy_runner import registration

    path = registration.config_path(config_path)
    short = registration.register(
        path, url=url, registration_token=registration_token, name=name, executor=executor,
        limit=limit, request_concurrency=request_concurrency, tls_ca_file=tls_ca_file,
    )  # fmt: skip
    click.echo(f"Runner {name} registered (token {short}...); configuration saved to {path}")


@cli.command()
@_edit_config_option
@click.option("--delete", is_flag=True, help="Remove the runners the coordinator does not know.")
def verify(config_path: Path | None, delete: bool) -> None:
    """Check each runner's token with its coordinator; exit 1 if one is not valid."""
    from alloy_runner import registration

    path = registration.config_path(config_path)
    results = registration.verify(path, delete=delete)
    failed = False
    for result in results:
        if result.alive:
            click.echo(f"Verifying runner {result.name}... is alive")
        elif result.alive is False:
            click.echo(
                f"Verifying runner {result.name}... is removed"
                + (f"; deleted from {path}" if delete else "")
            )
            failed |= not delete
        else:
            click.echo(f"Verifying runner {result.name}... error: {result.why}")
            failed = True
    if failed:
        sys.exit(1)


@cli.command(name="list")
@_edit_config_option
def list_command(config_path: Path | None) -> None:
    """List the runners of config.toml (tokens shortened to 8 characters)."""
    from alloy_runner import registration

    path = registration.config_path(config_path)
    lines = registration.list_runners(path)
    click.echo(f"Listing configured runners ConfigFile={path}")
    for line in lines:
        click.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        cli.main(args=argv, prog_name="alloy-runner", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "))
    except AlloyRunnerError as exc:
        _fail(str(exc).replace("\n", " "))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
