"""Exit statuses through `main(argv)`: bad input exits 2, a runtime failure 1, each in one line."""

from __future__ import annotations

import ast
import contextlib
import importlib
import os
import pkgutil
import subprocess
from pathlib import Path

import pytest

import alloy_runner
from alloy_runner import exceptions
from alloy_runner.exceptions import EXIT_FAILURE, EXIT_USAGE, AlloyRunnerError
from tests.support import free_port
from tests.support.cli import assert_one_error_line, run_main
from tests.support.fake_coordinator import FakeCoordinator

SRC = Path(alloy_runner.__file__).parent
PIPELINE = "stages: [build]\ncompile:\n  stage: build\n  script: [echo compiled]\n"


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def test_every_error_class_is_declared_in_exceptions() -> None:
    """No module but exceptions.py defines an exception class, and every one has a root."""
    for module in pkgutil.walk_packages(alloy_runner.__path__, "alloy_runner."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    errors = _all_subclasses(AlloyRunnerError)
    assert {cls.__module__ for cls in errors} == {"alloy_runner.exceptions"}
    exported = set(exceptions.__all__) - {"EXIT_FAILURE", "EXIT_USAGE", "AlloyRunnerError"}
    assert {cls.__name__ for cls in errors} == exported
    for path in SRC.rglob("*.py"):
        if path.name == "exceptions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base) for base in node.bases}
                assert not any(b.endswith(("Error", "Exception")) for b in bases), (path, node.name)


def test_the_docstring_draws_every_class() -> None:
    doc = exceptions.__doc__ or ""
    for cls in (AlloyRunnerError, *_all_subclasses(AlloyRunnerError)):
        assert f"+ {cls.__name__} " in doc or f"* {cls.__name__} " in doc, cls.__name__


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("ConfigError", EXIT_USAGE),
        ("AddressError", EXIT_USAGE),
        ("WebConfigError", EXIT_USAGE),
        ("PipelineError", EXIT_USAGE),
        ("TokenRefused", EXIT_FAILURE),  # the coordinator's answer (issue 17)
        ("CoordinatorError", EXIT_FAILURE),
        ("Unreachable", EXIT_FAILURE),
        ("ArtifactsError", EXIT_FAILURE),
        ("MachineError", EXIT_FAILURE),
        ("HelperError", EXIT_FAILURE),
        ("WaitTimeout", EXIT_FAILURE),
    ],
)
def test_usage_errors_exit_2_and_runtime_failures_1(name: str, status: int) -> None:
    assert getattr(exceptions, name).exit_code == status


def test_register_against_an_unreachable_coordinator_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens at the URL: a runtime failure, one line, and no config file written."""
    config = tmp_path / "config.toml"
    url = f"http://127.0.0.1:{free_port()}"
    ran = run_main(capsys, "register", "-c", str(config), "-u", url, "-r", "tok", "--name", "ci")
    assert_one_error_line(ran, EXIT_FAILURE, "cannot reach the coordinator", "register")
    assert not config.exists()


def test_register_with_a_url_that_is_not_http_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(tmp_path / "config.toml")
    ran = run_main(
        capsys, "register", "-c", config, "-u", "ftp://x.test", "-r", "t", "--name", "ci"
    )
    assert_one_error_line(ran, EXIT_USAGE, "url 'ftp://x.test'", "http://")


def test_register_with_a_refused_token_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeCoordinator().start()
    try:
        config = str(tmp_path / "config.toml")
        ran = run_main(capsys, "register", "-c", config, "-u", fake.url, "-r", "no", "--name", "ci")
    finally:
        fake.stop()
    assert_one_error_line(ran, EXIT_FAILURE, "refused the registration token (403)")


def test_verify_with_an_unreachable_coordinator_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    url = f"http://127.0.0.1:{free_port()}"
    config.write_text(f'[[runners]]\nname = "ci"\nurl = "{url}"\ntoken = "glrt-x"\n')
    ran = run_main(capsys, "verify", "-c", str(config))
    assert ran.status == EXIT_FAILURE
    assert ran.stdout.startswith("Verifying runner ci... error: cannot reach the coordinator")


def test_a_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    ran = run_main(capsys, "submit", "--no-such-flag")
    assert_one_error_line(ran, EXIT_USAGE, "--no-such-flag")


def test_a_pipeline_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".alloy-ci.yml").write_text("build:\n  stage: nope\n  script: [true]\n")
    file, spool = str(tmp_path / ".alloy-ci.yml"), str(tmp_path / "spool")
    ran = run_main(capsys, "submit", "--file", file, "--spool", spool)
    assert_one_error_line(ran, EXIT_USAGE, ".alloy-ci.yml:2:", "stage 'nope'")


def test_a_spool_that_cannot_be_made_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spool's place is a file: the input was fine, the directory cannot be made."""
    (tmp_path / ".alloy-ci.yml").write_text(PIPELINE)
    (tmp_path / "taken").write_text("a file, not a directory")
    spool = str(tmp_path / "taken" / "spool")
    ran = run_main(capsys, "submit", "--file", str(tmp_path / ".alloy-ci.yml"), "--spool", spool)
    assert_one_error_line(ran, EXIT_FAILURE, "Not a directory")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Writing the spool fails with ENOSPC on a real full file system: one line, exit 1."""
    (tmp_path / ".alloy-ci.yml").write_text(PIPELINE)
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        (disk / "spool" / "pending").mkdir(parents=True)
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:
            while True:
                filler.write(b"x" * 4096)
                filler.flush()
        file, spool = str(tmp_path / ".alloy-ci.yml"), str(disk / "spool")
        ran = run_main(capsys, "submit", "--file", file, "--spool", spool)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert_one_error_line(ran, EXIT_FAILURE, "No space left on device")


def test_submit_wait_that_times_out_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No runner takes the job: --wait gives up after its timeout, a runtime failure."""
    (tmp_path / ".alloy-ci.yml").write_text(PIPELINE)
    file, spool = str(tmp_path / ".alloy-ci.yml"), str(tmp_path / "spool")
    ran = run_main(capsys, "submit", "--file", file, "--spool", spool, "--wait", "--timeout", "0.2")
    assert_one_error_line(ran, EXIT_FAILURE, "the pipeline did not end within 0.2s")
    assert ran.stdout.splitlines()[1].startswith("  job ")
