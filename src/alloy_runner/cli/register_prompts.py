"""`register`'s missing values: asked for on a terminal (as GitLab Runner asks), else errors."""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from typing import Any

from alloy_runner.config.model import EXECUTORS
from alloy_runner.coordinator.gitlab.registration import NewRunner
from alloy_runner.coordinator.gitlab.runners_api import RegisterParams, is_authentication_token
from alloy_runner.exceptions import ConfigError


def prompt(question: str, *, default: str | None = None, choices: Sequence[str] = ()) -> str:
    """Ask `question` on stderr and read the answer from stdin, until it is a valid one.

    An empty answer takes `default` (asked again when there is none); an answer
    outside `choices` is refused and asked again. The end of input is an error.
    """
    shown = question
    if choices:
        shown += f" ({', '.join(choices)})"
    if default:
        shown += f" [{default}]"
    while True:
        print(f"{shown}: ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            print(file=sys.stderr)  # the error line starts a line of its own
            raise ConfigError(f"{question}: no answer before the end of input")
        answer = line.strip() or default
        if answer is None:
            continue
        if choices and answer not in choices:
            print(f"{answer!r} is not one of {', '.join(choices)}", file=sys.stderr)
            continue
        return answer


def _ask(values: dict[str, Any], key: str, question: str, interactive: bool, **kwargs: Any) -> None:
    if values.get(key) in (None, "") and interactive:
        values[key] = prompt(question, **kwargs)


def ask_missing(values: dict[str, Any], interactive: bool) -> None:
    """Fill what is missing from `values` (prompting only when `interactive`), or refuse."""
    _ask(
        values,
        "url",
        "Enter the GitLab instance URL (for example, https://gitlab.com/)",
        interactive,
    )
    if not values.get("url"):
        raise ConfigError("--url (or $CI_SERVER_URL): the coordinator's URL is needed")
    if not values.get("token") and not values.get("registration_token"):
        # GitLab Runner's question; the answer's form (glrt-...) decides the flow.
        _ask(values, "registration_token", "Enter the registration token", interactive)
    if not values.get("token") and not values.get("registration_token"):
        raise ConfigError(
            "--token (or $CI_SERVER_TOKEN): a runner authentication token is needed "
            "(or the deprecated --registration-token, $REGISTRATION_TOKEN)"
        )
    # --token is verified, whatever its form (an older runner token too, as GitLab Runner does);
    # only a registration token that is not an authentication token registers a new runner.
    legacy = not values.get("token") and not is_authentication_token(values["registration_token"])
    default_name = socket.gethostname()
    _ask(values, "name", "Enter a name for the runner", interactive, default=default_name)
    values["name"] = values.get("name") or default_name
    if legacy:
        _ask(
            values,
            "tag_list",
            "Enter tags for the runner (comma-separated)",
            interactive,
            default="",
        )
        _ask(
            values,
            "maintenance_note",
            "Enter an optional maintenance note",
            interactive,
            default="",
        )
    _ask(
        values,
        "executor",
        "Enter an executor",
        interactive,
        default="shell",
        choices=[executor.value for executor in EXECUTORS],
    )
    values["executor"] = values.get("executor") or "shell"


def new_runner(values: dict[str, Any], reserved: list[str]) -> NewRunner:
    """Return the runner to register from the command's (completed) values."""
    tags = tuple(t.strip() for t in (values.get("tag_list") or "").split(",") if t.strip())
    run_untagged = values.get("run_untagged")
    params = RegisterParams(
        description=values["name"],
        tag_list=tags,
        run_untagged=not tags if run_untagged is None else bool(run_untagged),
        locked=True if values.get("locked") is None else bool(values["locked"]),
        paused=bool(values.get("paused")),
        maintenance_note=values.get("maintenance_note") or "",
        access_level=values.get("access_level") or "",
        maximum_timeout=values.get("maximum_timeout") or 0,
        executor=values["executor"],
    )
    return NewRunner(
        url=values["url"],
        name=values["name"],
        token=values.get("token") or "",
        registration_token=values.get("registration_token") or "",
        params=params,
        reserved_given=tuple(f"--{name.replace('_', '-')}" for name in reserved),
        executor=values["executor"],
        limit=values["limit"],
        request_concurrency=values["request_concurrency"],
        tls_ca_file=values["tls_ca_file"],
        builds_dir=values["builds_dir"],
        cache_dir=values["cache_dir"],
        docker_image=values.get("docker_image") or "",
        leave_runner=bool(values.get("leave_runner")),
    )
