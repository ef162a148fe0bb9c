"""The demo stack, checked statically (no Docker engine here): files, services, hosts and ports.

What one file names in another (a service, a port, a path) must exist there:
the collector's exporter host is a compose service listening on that port,
Prometheus scrapes the runner where the runner listens, Grafana's data
sources point at services, and every file a service mounts is in the repo.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from alloy_runner.pipeline.ci_yaml import load_pipeline
from tests.support.http_client import free_port
from tests.support.runner import RunnerProcess

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
COLLECTOR = ROOT / "otel-collector.yaml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "docs" / "prometheus" / "prometheus.yml"
DATASOURCES = ROOT / "docs" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
DASHBOARDS = ROOT / "docs" / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = ROOT / "docs" / "grafana" / "alloy-runner.json"
TEMPO = ROOT / "docs" / "stack" / "tempo.yaml"

SERVICES = {"runner", "feeder", "otel-collector", "tempo", "prometheus", "pyroscope", "grafana"}
# The ports each service's image listens on, as its own config (or image) sets them.
RUNNER_PORT = 9252


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load(COMPOSE)
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Return the service's bind mounts as {container path: host path}."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = source
    return out


def host_file(service: dict[str, Any], container_path: str) -> Path:
    """Return the repo file a container path of `service` is bound to."""
    for target, source in sorted(mounts(service).items(), key=lambda m: -len(m[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return ROOT / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted from the repo")


def published(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def url_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def test_every_file_parses() -> None:
    """The compose file, the collector, Tempo, Prometheus and Grafana files are valid YAML/JSON."""
    for path in (COMPOSE, COLLECTOR, PROMETHEUS, DATASOURCES, DASHBOARDS, TEMPO):
        assert isinstance(load(path), dict), path
    assert json.loads(DASHBOARD.read_text())["uid"] == "alloy-runner"


def test_the_stack_has_its_services_each_with_an_image(compose: dict[str, Any]) -> None:
    """Every service of the tour exists with an image or a build whose context exists."""
    assert set(services(compose)) == SERVICES
    for name, service in services(compose).items():
        assert service.get("image") or service.get("build"), name
        if "build" in service:
            build = service["build"]
            context = ROOT / (build["context"] if isinstance(build, dict) else build)
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    for name, service in services(compose).items():
        for dependency in service.get("depends_on", []):
            assert dependency in SERVICES, (name, dependency)


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    """Each bind mount's source is a file or directory of the repo; named volumes are declared."""
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)


def test_runner_and_feeder_share_the_spool(compose: dict[str, Any]) -> None:
    """The feeder submits into the volume the runner takes its jobs from."""
    runner, feeder = services(compose)["runner"], services(compose)["feeder"]
    spool = "/home/alloy/.alloy-runner/spool"  # the embedded default's, for the image's user
    assert f"spool:{spool}" in runner["volumes"]
    assert f"spool:{spool}" in feeder["volumes"]
    script = " ".join(feeder["command"])
    assert f"submit --spool {spool} --file /examples/.alloy-ci.yml" in script
    assert host_file(feeder, "/examples/.alloy-ci.yml") == ROOT / "examples" / ".alloy-ci.yml"
    assert feeder["depends_on"]["runner"]["condition"] == "service_healthy"


def test_the_runner_listens_where_prometheus_scrapes_it(compose: dict[str, Any]) -> None:
    """Prometheus scrapes the runner's service and port, and loads the mounted rule files."""
    runner, prometheus = services(compose)["runner"], services(compose)["prometheus"]
    assert runner["command"][-2:] == ["--metrics-server", f":{RUNNER_PORT}"]
    assert RUNNER_PORT in published(runner)
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = host_file(prometheus, config_flag.split("=", 1)[1])
    assert config_path == PROMETHEUS
    config = load(config_path)
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert targets == [f"runner:{RUNNER_PORT}"]
    for rule_file in config["rule_files"]:
        assert (config_path.parent / rule_file).is_file(), rule_file


def test_otlp_goes_from_the_runner_through_the_collector_to_tempo(compose: dict[str, Any]) -> None:
    """The runner's endpoint is the collector's OTLP/HTTP receiver; its exporter is Tempo's."""
    stack = services(compose)
    collector_service = stack["otel-collector"]
    config_flag = next(a for a in collector_service["command"] if a.startswith("--config="))
    assert host_file(collector_service, config_flag.split("=", 1)[1]) == COLLECTOR
    collector = load(COLLECTOR)
    protocols = collector["receivers"]["otlp"]["protocols"]

    host, port = url_target(stack["runner"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (host, port) == ("otel-collector", port_of(protocols["http"]["endpoint"]))
    assert {port_of(protocols["grpc"]["endpoint"]), port} <= published(collector_service)

    [tempo_exporter] = [k for k in collector["exporters"] if k.startswith("otlp_grpc")]
    host, tempo_port = collector["exporters"][tempo_exporter]["endpoint"].split(":")
    assert host == "tempo"
    tempo_config = load(host_file(stack["tempo"], "/etc/tempo.yaml"))
    assert host_file(stack["tempo"], "/etc/tempo.yaml") == TEMPO
    tempo_grpc = tempo_config["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]
    assert port_of(tempo_grpc["endpoint"]) == int(tempo_port)
    assert "tempo" in collector_service["depends_on"]


def test_the_collector_pipelines_use_current_components_in_order() -> None:
    """Metrics and traces pipelines exist, use only defined components, and no deprecated names."""
    collector = load(COLLECTOR)
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == {"metrics", "traces"}
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"] == ["otlp"], name
        assert pipeline["processors"] == ["memory_limiter", "batch"], name  # the limiter first
        assert "debug" in pipeline["exporters"], name
        for kind in used:
            used[kind] |= set(pipeline[kind])
    for kind, names in used.items():
        assert names == set(collector[kind]), kind  # every defined component is used
    assert "prometheus" in pipelines["metrics"]["exporters"]
    assert any(e.startswith("otlp_grpc/") for e in pipelines["traces"]["exporters"])
    for exporter in collector["exporters"]:
        kind = exporter.split("/")[0]
        # Renamed in collector v0.144 (otlp -> otlp_grpc, otlphttp -> otlp_http); logging -> debug.
        assert kind not in ("otlp", "otlphttp", "logging"), exporter
    for extension in collector["service"].get("extensions", []):
        assert extension in collector["extensions"]


def test_prometheus_does_not_also_scrape_the_collector_s_copy_of_the_metrics() -> None:
    """One path per series: the collector's prometheus exporter port is no scrape target."""
    exporter_port = port_of(load(COLLECTOR)["exporters"]["prometheus"]["endpoint"])
    targets = json.dumps(load(PROMETHEUS)["scrape_configs"])
    assert f"otel-collector:{exporter_port}" not in targets
    assert "receivers" in load(COLLECTOR) and "prometheus" not in load(COLLECTOR)["receivers"]


def test_grafana_data_sources_point_at_the_services(compose: dict[str, Any]) -> None:
    """Prometheus, Tempo and Pyroscope data sources use the compose hosts and ports."""
    stack = services(compose)
    grafana = stack["grafana"]
    assert (
        host_file(grafana, "/etc/grafana/provisioning/datasources/datasources.yml") == DATASOURCES
    )
    sources = {s["type"]: s for s in load(DATASOURCES)["datasources"]}
    assert set(sources) == {"prometheus", "tempo", "grafana-pyroscope-datasource"}
    expected = {
        "prometheus": ("prometheus", 9090),
        "tempo": ("tempo", load(TEMPO)["server"]["http_listen_port"]),
        "grafana-pyroscope-datasource": ("pyroscope", 4040),
    }
    for kind, (service, port) in expected.items():
        assert url_target(sources[kind]["url"]) == (service, port), kind
        assert port in published(stack[service]), service
    pyroscope = stack["runner"]["environment"]["PYROSCOPE_SERVER_ADDRESS"]
    assert url_target(pyroscope) == ("pyroscope", 4040)
    assert grafana["image"].startswith("grafana/grafana")
    assert stack["pyroscope"]["image"].startswith("grafana/pyroscope:")


def test_grafana_loads_the_dashboard_with_the_provisioned_data_source(
    compose: dict[str, Any],
) -> None:
    """The provider's folder holds the dashboard, whose panels use provisioned data sources."""
    grafana = services(compose)["grafana"]
    [provider] = load(DASHBOARDS)["providers"]
    folder = provider["options"]["path"]
    assert host_file(grafana, f"{folder}/alloy-runner.json") == DASHBOARD
    sources = load(DATASOURCES)["datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    # Panels query the data source the `datasource` variable picks among Prometheus ones:
    # the provisioned one here, any Prometheus where the dashboard is imported.
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] in {s["type"] for s in sources}
    for panel in dashboard["panels"]:
        if panel.get("targets"):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
    # The exemplars of job duration open their trace in the provisioned Tempo.
    (prometheus,) = [s for s in sources if s["type"] == "prometheus"]
    (link,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert link == {"name": "trace_id", "datasourceUid": "tempo"}
    assert "tempo" in {s["uid"] for s in sources}


def test_the_dockerfile_runs_the_runner_as_a_user_with_a_healthcheck() -> None:
    """A pinned python:3.11 slim image, a non-root user, EXPOSE 9252, HEALTHCHECK on /-/ready,
    and alloy-runner as the entry point, running `run` unless told otherwise."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim-[a-z]+$", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users == ["alloy"]
    assert re.search(r"^RUN useradd .*\balloy$", text, re.MULTILINE)
    assert re.search(rf"^EXPOSE {RUNNER_PORT}$", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["alloy-runner"\]$', text, re.MULTILINE)
    assert re.search(r'^CMD \["run", "--metrics-server", ":9252"\]$', text, re.MULTILINE)
    assert "/-/ready" in healthcheck_code(text) and "urllib" in healthcheck_code(text)


def _run_instructions(dockerfile: str) -> list[str]:
    """Return each RUN instruction with its continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    return [line[4:] for line in joined.splitlines() if line.startswith("RUN ")]


def test_the_image_has_git_git_lfs_and_ca_certificates() -> None:
    """Jobs from a coordinator fetch their sources with git: the image installs it."""
    runs = _run_instructions(DOCKERFILE.read_text())
    apt = next(r for r in runs if "apt-get install" in r)
    assert {"git", "git-lfs", "ca-certificates"} <= set(apt.split())
    assert "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists/*" in apt
    assert any("git lfs install --system" in r for r in runs)


def _locked(path: Path) -> dict[str, list[str]]:
    """Return {name: [hashes]} of a pip-compile --generate-hashes lock file."""
    pins: dict[str, list[str]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", line):
            name = match[1].lower().replace("_", "-")
            pins[name] = []
        elif match := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line):
            pins[name].append(match[1])
    return pins


def test_dependencies_are_installed_from_lock_files_with_hashes() -> None:
    """pip installs with --require-hashes from the locks, which pin every runtime dependency."""
    runs = _run_instructions(DOCKERFILE.read_text())
    locked = next(r for r in runs if "--require-hashes" in r)
    assert "-r /tmp/requirements.lock" in locked and "-r /tmp/requirements-build.lock" in locked
    assert any(re.search(r"pip install --no-deps --no-build-isolation /src", r) for r in runs)
    pins = _locked(ROOT / "requirements.lock") | _locked(ROOT / "requirements-build.lock")
    assert pins and all(pins.values()), "every pinned package has at least one hash"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is a dependency the lock does not pin"
    assert "hatchling" in pins  # the build backend, so that no build step fetches anything


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    """docker-compose.yml validates against the compose-spec JSON schema (vendored, with its
    source, by check-jsonschema)."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(load(COMPOSE)), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    assert list(validator.iter_errors({"services": {"x": {"ports": [{"bad": 1}]}}}))


def test_ports_are_published_on_loopback_unless_told_otherwise(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            assert str(port).startswith("${ALLOY_BIND:-127.0.0.1}:"), (name, port)


def test_grafana_has_no_anonymous_admin(compose: dict[str, Any]) -> None:
    env = services(compose)["grafana"]["environment"]
    if env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true":
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    assert env.get("GF_AUTH_DISABLE_LOGIN_FORM") != "true"


def test_every_image_tag_is_pinned_and_documented(compose: dict[str, Any]) -> None:
    """No `latest`, no tag-less image; each pinned tag is the one docs/stack.md names."""
    stack_doc = (ROOT / "docs" / "stack.md").read_text()
    for name, service in services(compose).items():
        image = service["image"]
        if "build" in service:
            continue  # built here from the Dockerfile
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), (name, image)
        assert f"`{image}`" in stack_doc, f"docs/stack.md does not name {image}"
    base = re.search(r"^FROM (\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base and f"`{base[1]}`" in stack_doc


def healthcheck_code(dockerfile: str) -> str:
    match = re.search(r'HEALTHCHECK .*?CMD \["python", "-c", "(.*?)"\]', dockerfile, re.DOTALL)
    assert match, "no HEALTHCHECK running python -c"
    return match[1]


def test_the_healthcheck_passes_on_a_ready_runner_and_fails_without_one(tmp_path: Path) -> None:
    """The HEALTHCHECK's Python, run against a real runner, exits 0; against nothing, non-zero."""
    code = healthcheck_code(DOCKERFILE.read_text())
    with RunnerProcess(tmp_path, None, metrics_server="127.0.0.1:0") as runner:
        ready = code.replace(f":{RUNNER_PORT}/", f":{runner.port}/")
        assert subprocess.run([sys.executable, "-c", ready], timeout=10).returncode == 0
    down = code.replace(f":{RUNNER_PORT}/", f":{free_port()}/")
    result = subprocess.run([sys.executable, "-c", down], capture_output=True, timeout=10)
    assert result.returncode != 0


def test_the_sample_pipeline_has_every_kind_of_job() -> None:
    """examples/.alloy-ci.yml has passing, failing, allowed-to-fail, slow and timing-out jobs."""
    spec = load_pipeline(ROOT / "examples" / ".alloy-ci.yml")
    assert not spec.warnings
    jobs = {job.name: job for job in spec.jobs}
    assert any(j.allow_failure for j in jobs.values())
    assert any(not j.allow_failure and "exit 2" in j.script for j in jobs.values())
    assert any(
        "sleep" in " ".join(j.script) and "SLOW_SECONDS" in " ".join(j.script)
        for j in jobs.values()
    )
    assert any(j.timeout < 60 for j in jobs.values())
