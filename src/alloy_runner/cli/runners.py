"""The runner commands: `register`, `verify` and `list` against config.toml."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from alloy_runner.cli.args import (
    FromEnv,
    Parser,
    add_env_option,
    at_least,
    boolean,
    file_path,
    read_env,
)
from alloy_runner.cli.options import add_json, print_json
from alloy_runner.config.model import EXECUTORS
from alloy_runner.coordinator.gitlab.runners_api import ACCESS_LEVELS

_RESERVED = (
    "tag_list",
    "run_untagged",
    "locked",
    "paused",
    "maintenance_note",
    "access_level",
    "maximum_timeout",
)


def parser(command: str, description: str) -> Parser:
    """The parser of `register`, `verify`, `list`, `unregister` or `reset-token`."""
    made = Parser(command, description)
    made.add_argument(
        "--config",
        "-c",
        dest="config_path",
        type=file_path,
        metavar="FILE",
        help="config.toml to edit (default: $CONFIG_FILE, else ~/.alloy-runner/config.toml).",
    )
    if command == "register":
        made.epilog = (
            "Every flag has GitLab Runner's environment variable (shown as [env: ...]); on a "
            "terminal, missing values are asked for unless --non-interactive."
        )
        made.set_defaults(handler=register, from_env=_register_arguments(made))
    elif command == "verify":
        made.add_argument(
            "--delete",
            action="store_true",
            help="Remove the runners the coordinator does not know.",
        )
        made.set_defaults(handler=verify)
    elif command == "list":
        add_json(made)
        made.set_defaults(handler=list_command)
    else:
        made.set_defaults(handler=unregister if command == "unregister" else reset_token)
        made.set_defaults(from_env=_select_arguments(made, command))
    return made


def _register_arguments(made: Parser) -> list[FromEnv]:
    """Add `register`'s flags; return them: an environment variable may give each."""
    return [
        add_env_option(made, *flags, env=variable, **kwargs)
        for flags, variable, kwargs in _register_flags()
    ]


def _register_flags() -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    """`register`'s flags with GitLab Runner's environment variables, in help order."""
    # A GitLab-style boolean: `--flag` alone is true, `--flag=false` is allowed, absent is None.
    optional_bool = {"nargs": "?", "const": True, "type": boolean, "metavar": "BOOL"}
    executors = ", ".join(executor.value for executor in EXECUTORS)
    return [
        (
            ("--non-interactive", "-n"),
            "REGISTER_NON_INTERACTIVE",
            {"action": "store_true", "help": "Never prompt; missing values are errors."},
        ),
        (("--url", "-u"), "CI_SERVER_URL", {"help": "The coordinator's URL."}),
        (
            ("--token", "-t"),
            "CI_SERVER_TOKEN",
            {"help": "A runner authentication token (glrt-...) made in GitLab: it is verified."},
        ),
        (
            ("--registration-token", "-r"),
            "REGISTRATION_TOKEN",
            {"help": "A registration token (GitLab's deprecated flow): the coordinator makes one."},
        ),
        (
            ("--name", "--description"),
            "RUNNER_NAME",
            {"dest": "name", "help": "The runner's name, unique in the file (default: host name)."},
        ),
        (
            ("--executor",),
            "RUNNER_EXECUTOR",
            {"type": _executor, "help": f"The runner's executor: {executors} (default: shell)."},
        ),
        (
            ("--docker-image",),
            "DOCKER_IMAGE",
            {"help": "The default image, written as [runners.docker] image."},
        ),
        (("--tag-list",), "RUNNER_TAG_LIST", {"help": "Comma-separated tags."}),
        (
            ("--run-untagged",),
            "REGISTER_RUN_UNTAGGED",
            {
                **optional_bool,
                "help": "Run untagged jobs (default: true when --tag-list is empty).",
            },
        ),
        (
            ("--locked",),
            "REGISTER_LOCKED",
            {**optional_bool, "help": "Lock the runner to its project (default: true)."},
        ),
        (
            ("--paused",),
            "REGISTER_PAUSED",
            {**optional_bool, "help": "Register the runner paused (default: false)."},
        ),
        (("--maintenance-note",), "REGISTER_MAINTENANCE_NOTE", {}),
        (
            ("--access-level",),
            "REGISTER_ACCESS_LEVEL",
            {"type": _access_level, "help": f"One of {', '.join(ACCESS_LEVELS)}."},
        ),
        (
            ("--maximum-timeout",),
            "REGISTER_MAXIMUM_TIMEOUT",
            {"type": at_least(0), "help": "Seconds; the longest a job may run here."},
        ),
        (("--limit",), "RUNNER_LIMIT", {"type": at_least(0), "help": "(default: 0)"}),
        (
            ("--request-concurrency",),
            "RUNNER_REQUEST_CONCURRENCY",
            {"type": at_least(1), "help": "(default: 1)"},
        ),
        (
            ("--tls-ca-file",),
            "CI_SERVER_TLS_CA_FILE",
            {"help": "CA certificates that verify the coordinator."},
        ),
        (("--builds-dir",), "RUNNER_BUILDS_DIR", {}),
        (
            ("--leave-runner",),
            "REGISTER_LEAVE_RUNNER",
            {
                "action": "store_true",
                "help": "Keep a runner registered for this call if the file cannot be written.",
            },
        ),
        (("--cache-dir",), "RUNNER_CACHE_DIR", {}),
    ]


def _select_arguments(made: Parser, command: str) -> list[FromEnv]:
    """Add the flags that choose runners (`unregister`, `reset-token`)."""
    made.add_argument("--name", "-n", default="", help="The runner of this name.")
    made.add_argument("--all-runners", action="store_true", help="Every runner with a url.")
    chosen = [add_env_option(made, "--url", "-u", env="CI_SERVER_URL")]
    if command == "unregister":
        chosen.append(
            add_env_option(made, "--token", "-t", env="CI_SERVER_TOKEN", help="With --url.")
        )
    else:
        made.add_argument("--id", dest="runner_id", type=at_least(1), help="With --url.")
    return chosen


def _executor(text: str) -> str:
    names = [executor.value for executor in EXECUTORS]
    if text not in names:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(names)}")
    return text


def _access_level(text: str) -> str:
    if text not in ACCESS_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(ACCESS_LEVELS)}")
    return text


_DEFAULTS = {
    "limit": 0,
    "request_concurrency": 1,
    "tls_ca_file": "",
    "builds_dir": "",
    "cache_dir": "",
    "non_interactive": False,
    "leave_runner": False,
}


def register(args: argparse.Namespace) -> None:
    """Register a runner with a coordinator and add it to config.toml (comments are kept).

    Every flag has GitLab Runner's environment variable (CI_SERVER_URL, CI_SERVER_TOKEN,
    REGISTRATION_TOKEN, RUNNER_NAME, RUNNER_EXECUTOR, ...); on a terminal, missing values
    are asked for unless --non-interactive.
    """
    from alloy_runner.cli.register_prompts import ask_missing, new_runner
    from alloy_runner.coordinator.gitlab import registration

    read_env(args, args.from_env)
    values: dict[str, Any] = {option.dest: getattr(args, option.dest) for option in args.from_env}
    for key, default in _DEFAULTS.items():
        if values[key] is None:
            values[key] = default
    path = registration.config_path(args.config_path)
    interactive = not values.pop("non_interactive") and sys.stdin.isatty()
    ask_missing(values, interactive)
    new = new_runner(values, [name for name in _RESERVED if values[name] is not None])
    short = registration.register(path, new)
    print(f"Runner {new.name} registered (token {short}...); configuration saved to {path}")


def verify(args: argparse.Namespace) -> None:
    """Check each runner's token with its coordinator; exit 1 if one is not valid."""
    from alloy_runner.coordinator.gitlab import registration

    delete: bool = args.delete
    path = registration.config_path(args.config_path)
    results = registration.verify(path, delete=delete)
    failed = False
    for result in results:
        if result.alive:
            print(f"Verifying runner {result.name}... is alive")
        elif result.alive is False:
            print(
                f"Verifying runner {result.name}... is removed"
                + (f"; deleted from {path}" if delete else "")
            )
            failed |= not delete
        else:
            print(f"Verifying runner {result.name}... error: {result.why}")
            failed = True
    if failed:
        sys.exit(1)


def list_command(args: argparse.Namespace) -> None:
    """List the runners of config.toml (tokens shortened to 8 characters)."""
    from alloy_runner.coordinator.gitlab import registration

    path = registration.config_path(args.config_path)
    runners = registration.list_runners(path)
    if args.as_json:
        print_json({"config_file": str(path), "runners": [runner.to_json() for runner in runners]})
        return
    print(f"Listing configured runners ConfigFile={path}")
    for runner in runners:
        print(runner.line())


def unregister(args: argparse.Namespace) -> None:
    """Remove runners from their coordinator (DELETE /runners) and from config.toml."""
    from alloy_runner.coordinator.gitlab import registration, tokens

    read_env(args, args.from_env)
    path = registration.config_path(args.config_path)
    which = tokens.Selection(
        name=args.name, all_runners=args.all_runners, url=args.url or "", token=args.token or ""
    )
    for removed in tokens.unregister(path, which):
        print(f"Unregistering runner {removed} from GitLab succeeded; removed from {path}")


def reset_token(args: argparse.Namespace) -> None:
    """Replace runners' authentication tokens with new ones and save them in config.toml."""
    from alloy_runner.coordinator.gitlab import registration, tokens

    read_env(args, args.from_env)
    path = registration.config_path(args.config_path)
    which = tokens.Selection(
        name=args.name,
        all_runners=args.all_runners,
        url=args.url or "",
        runner_id=args.runner_id or 0,
    )
    for runner, short in tokens.reset(path, which):
        print(f"Resetting runner {runner} authentication token succeeded (token {short}...)")
