"""What real jobs carry: sources, artifacts, caches, variables, masked secrets, and their log."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import stat
import zipfile

from alloy_runner.build.joblog import limit_message
from tests.support.jobs import BLOCK, STARTED, JobsRig, git, pipeline
from tests.support.runner import RunnerProcess

Shared = tuple[JobsRig, RunnerProcess]


def test_artifacts_of_a_build_job_reach_a_later_stage_with_their_modes(shared: Shared) -> None:
    """Artifacts (`paths: [out/]`) reach the next stage's job with their executable bits."""
    rig, _ = shared
    project = rig.project(
        "artifacts",
        pipeline(
            ["build", "test"],
            compile={
                "stage": "build",
                "script": [
                    "mkdir -p out",
                    "printf '#!/bin/sh\\necho tool-ran\\n' > out/tool.sh",
                    "chmod 755 out/tool.sh",
                    "echo payload > out/data.txt",
                ],
                "artifacts": {"paths": ["out/"]},
            },
            use={
                "stage": "test",
                "script": [
                    'stat -c %a out/tool.sh > "$OUT/mode-$CI_JOB_ID"',
                    './out/tool.sh > "$OUT/tool-$CI_JOB_ID"',
                    'cat out/data.txt > "$OUT/data-$CI_JOB_ID"',
                ],
            },
        ),
    )
    # A git project: every job's checkout starts with `git clean`, so `out/` can only come
    # from the artifacts, not from the build job's leftovers in the shared project directory.
    project.git_init().commit("init")
    jobs = rig.submit(project).jobs
    results = rig.wait_results(jobs.values())
    assert [results[jobs[n]]["status"] for n in ("compile", "use")] == ["success", "success"]

    archive = rig.done_dir(jobs["compile"]) / "artifacts.zip"
    assert archive.is_file()
    with zipfile.ZipFile(archive) as zipped:
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in zipped.infolist()}
    assert modes["out/tool.sh"] == 0o755
    assert "out/data.txt" in modes

    use = jobs["use"]
    assert (rig.out / f"mode-{use}").read_text() == "755\n"
    assert (rig.out / f"tool-{use}").read_text() == "tool-ran\n"
    assert (rig.out / f"data-{use}").read_text() == "payload\n"
    assert f"Restoring artifacts from dependency-{jobs['compile']}.zip".encode() in rig.trace(use)


def test_untracked_only_artifacts_are_archived(shared: Shared) -> None:
    """`artifacts: {untracked: true}` without `paths` archives the files git does not track."""
    rig, _ = shared
    project = rig.project(
        "untracked",
        pipeline(make={"script": ["echo made > made.txt"], "artifacts": {"untracked": True}}),
    )
    project.git_init().commit("init")
    jobs = rig.submit(project).jobs
    result = rig.wait_results(jobs.values())[jobs["make"]]
    assert result["status"] == "success"
    with zipfile.ZipFile(rig.done_dir(jobs["make"]) / "artifacts.zip") as zipped:
        assert zipped.read("made.txt") == b"made\n"


def test_cache_of_one_pipeline_is_restored_in_the_next(shared: Shared) -> None:
    """A file a job caches (`cache: paths`) is there for the same job in the next pipeline."""
    rig, _ = shared
    token = secrets.token_hex(8)
    project = rig.project(
        "cache",
        pipeline(
            deps={
                "script": [
                    'if [ -n "$TOKEN" ]; then mkdir -p vendor && echo "$TOKEN" > vendor/t; fi',
                    'cat vendor/t > "$OUT/cached-$CI_JOB_ID"',
                ],
                "cache": {"key": "deps", "paths": ["vendor/"]},
            }
        ),
    )
    project.git_init().commit("init")
    first = rig.submit(project, "--var", f"TOKEN={token}").jobs["deps"]
    assert rig.wait_results([first])[first]["status"] == "success"
    assert (rig.cache / "cache" / "deps" / "cache.zip").is_file()
    # Nothing of the first build is left: the second can only find the file in the cache.
    for leftover in rig.builds.glob(f"*/*/{project.path.name}"):
        shutil.rmtree(leftover)

    second = rig.submit(project).jobs["deps"]
    result = rig.wait_results([second])[second]
    assert result["status"] == "success", rig.trace(second).decode()
    assert (rig.out / f"cached-{second}").read_text() == f"{token}\n"


def test_sources_are_fetched_at_the_submitted_commit(shared: Shared) -> None:
    """A job checks out the commit HEAD was at when the pipeline was submitted, not a later one."""
    rig, _ = shared
    project = rig.project(
        "sources",
        pipeline(
            ["build", "test"],
            hold={"stage": "build", "script": [STARTED, BLOCK]},
            read={
                "stage": "test",
                "script": [
                    'cat version.txt > "$OUT/version-$CI_JOB_ID"',
                    'git rev-parse HEAD > "$OUT/head-$CI_JOB_ID"',
                    'echo "$CI_COMMIT_SHA" > "$OUT/sha-$CI_JOB_ID"',
                ],
            },
        ),
    )
    (project.path / "version.txt").write_text("one\n")
    project.git_init()
    submitted_sha = project.commit("one")
    jobs = rig.submit(project).jobs
    rig.wait_started([jobs["hold"]])
    # The repository moves on before the test stage fetches it.
    (project.path / "version.txt").write_text("two\n")
    later_sha = project.commit("two")
    assert later_sha != submitted_sha
    rig.release(jobs["hold"])

    results = rig.wait_results(jobs.values())
    read = jobs["read"]
    assert results[read]["status"] == "success", rig.trace(read).decode()
    assert (rig.out / f"version-{read}").read_text() == "one\n"
    assert (rig.out / f"head-{read}").read_text() == f"{submitted_sha}\n"
    assert (rig.out / f"sha-{read}").read_text() == f"{submitted_sha}\n"


def test_ci_variables_describe_the_job(shared: Shared) -> None:
    """The job's environment has CI, CI_JOB_*, CI_PROJECT_DIR, CI_COMMIT_*, CI_PIPELINE_ID, ..."""
    rig, _ = shared
    project = rig.project(
        "variables",
        pipeline(
            ["build"],
            describe={
                "stage": "build",
                "script": ['env -0 > "$OUT/env-$CI_JOB_ID"', 'pwd > "$OUT/pwd-$CI_JOB_ID"'],
            },
        ),
    )
    project.git_init()
    sha = project.commit("init")
    submitted = rig.submit(project)
    job = submitted.jobs["describe"]
    assert rig.wait_results([job])[job]["status"] == "success"

    entries = (rig.out / f"env-{job}").read_text().split("\0")
    env = dict(e.split("=", 1) for e in entries if "=" in e)
    expected = {
        "CI": "true",
        "CI_JOB_ID": str(job),
        "CI_JOB_NAME": "describe",
        "CI_JOB_STAGE": "build",
        "CI_COMMIT_SHA": sha,
        "CI_COMMIT_REF_NAME": git(project.path, "symbolic-ref", "--short", "HEAD"),
        "CI_PIPELINE_ID": str(submitted.pipeline_id),
        "CI_RUNNER_DESCRIPTION": rig.runner_name,
    }
    assert {k: env.get(k) for k in expected} == expected
    project_dir = env["CI_PROJECT_DIR"]
    assert (rig.out / f"pwd-{job}").read_text() == f"{project_dir}\n"
    assert project_dir.startswith(f"{rig.builds}/")
    assert project_dir.endswith("/variables")


def test_masked_variable_never_leaves_the_job(shared: Shared) -> None:
    """A `--masked-var` value is used by the job but is in no log, result, metric or debug page."""
    rig, runner = shared
    secret = f"s3cret-{secrets.token_hex(12)}"
    project = rig.project(
        "masked",
        pipeline(
            leak={
                "script": [
                    STARTED,
                    BLOCK,
                    'echo "the secret is $SECRET"',
                    # Split over two writes: masking must not depend on where output breaks.
                    'printf %s "${SECRET:0:9}"; sleep 0.2; printf "%s\\n" "${SECRET:9}"',
                    "env | grep SECRET",
                    'printf %s "$SECRET" | sha256sum | cut -d" " -f1 > "$OUT/sha-$CI_JOB_ID"',
                ]
            }
        ),
    )
    job = rig.submit(project, "--masked-var", f"SECRET={secret}").jobs["leak"]
    rig.wait_started([job])
    needle = secret.encode()
    jobs_list = runner.request("GET", "/debug/jobs/list")
    assert jobs_list.status == 200
    assert f"id={job} ".encode() in jobs_list.body
    assert needle not in jobs_list.body
    assert needle not in runner.request("GET", "/metrics").body
    rig.release(job)

    assert rig.wait_results([job])[job]["status"] == "success"
    assert (rig.out / f"sha-{job}").read_text() == hashlib.sha256(needle).hexdigest() + "\n"
    done = rig.done_dir(job)
    assert {p.name for p in done.iterdir()} >= {"trace.log", "result.json", "job.json"}
    for path in done.iterdir():
        assert needle not in path.read_bytes(), f"the secret is in {path.name}"
    assert b"the secret is [MASKED]\n" in rig.trace(job)
    assert rig.trace(job).count(b"[MASKED]") >= 3
    assert needle not in runner.request("GET", "/metrics").body
    assert secret not in runner.stderr_text


def test_output_limit_cuts_the_log_and_the_job_still_succeeds(rig: JobsRig) -> None:
    """Past `output_limit` KiB the log ends with the "exceeded limit" notice; the job goes on."""
    rig.runner(rig.config(output_limit=1))
    project = rig.project(
        "chatty",
        pipeline(
            talk={
                "script": [
                    "head -c 5000 /dev/zero | tr '\\0' x",
                    "echo",
                    "echo after-the-limit",
                    'touch "$OUT/finished-$CI_JOB_ID"',
                ]
            }
        ),
    )
    job = rig.submit(project).jobs["talk"]
    result = rig.wait_results([job])[job]
    assert result["status"] == "success"
    assert (rig.out / f"finished-{job}").exists()
    trace = rig.trace(job)
    notice = limit_message(1024)
    assert trace.endswith(notice)
    assert len(trace) == 1024 + len(notice)
    assert b"after-the-limit" not in trace
