"""Keep deploy/ honest: the compose file and Kubernetes manifests must agree with the code.

Every OMNIROUTE_* variable they name is a real setting (and its value parses), every command is
a real CLI command whose arguments the CLI accepts, every port and probe points where the
process actually listens, and the KEDA scalers watch the consumer groups and topics the code
uses. Nothing here needs Docker or a cluster; `kubectl kustomize` runs when kubectl is present.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from omniroute.services import apps
from omniroute.services.cli import app as cli_app
from omniroute.shared import settings as settings_module
from omniroute.shared import topics
from omniroute.shared.http import health_router

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRET_TEMPLATE = K8S / "secret.example.yaml"

SERVICES = ("gateway", "router", "classifier")
ALL_INTERFACES = "0.0.0.0"
# The consumer group and topic of each consuming service, as the code wires them.
CONSUMERS = {
    "classifier": (apps.CLASSIFIER_GROUP, topics.CONTACTS_INBOUND),
    "router": (apps.ROUTER_GROUP, topics.CONTACTS_CLASSIFIED),
}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# --- the code's side -----------------------------------------------------------------------


def settings_classes() -> list[type[BaseSettings]]:
    return [
        obj
        for obj in vars(settings_module).values()
        if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings
    ]


def known_settings() -> set[str]:
    """Each field of each settings class, upper-cased, behind its class's env_prefix."""
    names: set[str] = set()
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def cli_root() -> Any:
    """The click group typer builds (typer may ship its own click, so no isinstance)."""
    root = typer.main.get_command(cli_app)
    assert hasattr(root, "commands")
    return root


def parse_cli(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Parse a container's arguments with the real CLI; the environment fills HOST and PORT."""
    root = cli_root()
    name, *rest = args
    assert name in root.commands, f"`omniroute {name}` is not a command"
    for var in ("HOST", "PORT"):
        if var in env:
            monkeypatch.setenv(var, env[var])
        else:
            monkeypatch.delenv(var, raising=False)
    command = root.commands[name]
    try:
        context = command.make_context(name, list(rest))
    except Exception as exc:  # click's UsageError, from whichever click typer uses
        pytest.fail(f"`omniroute {' '.join(args)}` is refused by the CLI: {exc}")
    leftover = [*getattr(context, "protected_args", []), *context.args]
    assert not leftover, f"`omniroute {' '.join(args)}` leaves {leftover} unparsed"
    return context.params


def check_settings_values(env: dict[str, str], where: str, monkeypatch: pytest.MonkeyPatch):
    """Every OMNIROUTE_* name is a setting, and the settings classes accept the values."""
    unknown = sorted({name for name in env if name.startswith("OMNIROUTE_")} - known_settings())
    assert not unknown, f"{where}: not settings of omniroute/shared/settings.py: {unknown}"
    for name in list(os.environ):
        if name.startswith("OMNIROUTE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("OMNIROUTE_") and value != "":
            monkeypatch.setenv(name, value)
    for cls in settings_classes():
        try:
            cls()
        except ValidationError as exc:
            pytest.fail(f"{where}: {cls.__name__} refuses the configured values: {exc}")


# --- docker-compose ------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with a stand-in for required ones."""

    def replace(match: re.Match[str]) -> str:
        kind, default = match.group(2), match.group(3)
        if kind and kind.endswith("-"):
            return default or ""
        return "stand-in-value"

    return INTERPOLATION.sub(replace, value)


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def omniroute_compose_services() -> dict[str, dict[str, Any]]:
    services = load_compose()["services"]
    return {name: svc for name, svc in services.items() if "build" in svc}


def test_compose_runs_kafka_postgres_migrate_and_every_service():
    services = load_compose()["services"]
    assert {"kafka", "postgres", "migrate", *SERVICES} <= set(services)
    assert set(omniroute_compose_services()) == {"migrate", *SERVICES}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["kafka"]["image"].startswith(("apache/kafka:", "redpandadata/redpanda:"))
    for name in ("kafka", "postgres"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["classifier"]["deploy"]["replicas"] == 2


def test_compose_commands_ports_and_healthchecks_match_the_cli(monkeypatch):
    for name, service in omniroute_compose_services().items():
        env = {k: interpolate(v) for k, v in compose_env(service).items()}
        params = parse_cli([str(a) for a in service["command"]], env, monkeypatch)
        assert service["command"][0] == name
        if name == "migrate":
            assert service.get("restart") == "no"
            continue
        assert params["host"] == ALL_INTERFACES, f"{name} listens on {params['host']} only"
        port = params["port"]
        published = [str(p) for p in service.get("ports", [])]
        assert all(p.rsplit(":", 1)[-1] == str(port) for p in published), (name, published)
        health = " ".join(str(part) for part in service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in health, f"{name}: healthcheck misses /readyz"
    services = load_compose()["services"]
    assert [str(p) for p in services["gateway"]["ports"]] == ["8000:8000"]
    assert [str(p) for p in services["router"]["ports"]] == ["8001:8001"]
    assert "ports" not in services["classifier"], "two classifier replicas cannot share a port"


def test_compose_start_order_waits_for_health_and_migration():
    services = load_compose()["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("gateway", "router"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["classifier"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_settings_exist_and_parse(monkeypatch):
    for name, service in omniroute_compose_services().items():
        raw = compose_env(service)
        assert raw["OMNIROUTE_ENV"] == "production"
        assert raw["OMNIROUTE_BUS"] == "kafka://kafka:9092"
        assert raw["OMNIROUTE_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in raw["OMNIROUTE_DATABASE_URL"]
        # No default secret: compose must refuse to start without one.
        assert re.fullmatch(r"\$\{OMNIROUTE_ADMIN_KEY:\?[^}]+\}", raw["OMNIROUTE_ADMIN_KEY"])
        env = {k: interpolate(v) for k, v in raw.items()}
        check_settings_values(env, f"compose service {name}", monkeypatch)


def test_env_example_names_only_settings_and_holds_no_secret():
    entries = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    unknown = {k for k in entries if k.startswith("OMNIROUTE_")} - known_settings()
    assert not unknown
    assert all(value == "" for value in entries.values()), "the example must not carry secrets"
    used = {m.group(1) for m in INTERPOLATION.finditer(COMPOSE.read_text())}
    required = {
        m.group(1)
        for m in INTERPOLATION.finditer(COMPOSE.read_text())
        if (m.group(2) or "").endswith("?")
    }
    assert required <= set(entries), "every required variable is in .env.example"
    assert set(entries) <= used


# --- Kubernetes ----------------------------------------------------------------------------


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_documents(*, include_template: bool = False) -> Iterator[dict[str, Any]]:
    for path in k8s_files():
        if path == SECRET_TEMPLATE and not include_template:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield doc


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}


def configmap_data() -> dict[str, str]:
    (configmap,) = objects("ConfigMap").values()
    return {k: str(v) for k, v in configmap["data"].items()}


def secret_template() -> dict[str, Any]:
    (secret,) = yaml.safe_load_all(SECRET_TEMPLATE.read_text())
    return secret


def workloads() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Name -> (object, its single container), for Deployments and Jobs."""
    found = {}
    for kind in ("Deployment", "Job"):
        for name, obj in objects(kind).items():
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            found[name] = (obj, container)
    return found


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: ConfigMap values, and secret refs as their key name."""
    configmaps = {name: cm["data"] for name, cm in objects("ConfigMap").items()}
    secret_keys = set(secret_template()["stringData"])
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        assert "configMapRef" in source, f"envFrom {ref}: name the secret keys one by one"
        assert ref["name"] in configmaps, f"no ConfigMap {ref['name']}"
        env.update({k: str(v) for k, v in configmaps[ref["name"]].items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret_template()["metadata"]["name"]
        assert ref["key"] in secret_keys, f"{ref['key']} is not in {SECRET_TEMPLATE.name}"
        env[item["name"]] = REAL_SECRET_VALUES.get(item["name"], "a-real-secret-value")
    return env


# Secrets with a format of their own, as a real Secret would hold them.
REAL_SECRET_VALUES = {"OMNIROUTE_SECRETS_KEY": "Y2CMcu4-DxOxNq3pmRQVK2Fz2r2f4XgR8r5yOt0nHvM="}


def dockerfile_env() -> dict[str, str]:
    env = {}
    for line in dockerfile_instructions():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_every_yaml_parses():
    paths = [*k8s_files(), K8S / "kustomization.yaml", COMPOSE]
    assert len(paths) >= 8
    for path in paths:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} is empty"
        assert all(isinstance(d, dict) for d in docs), path


def test_kustomization_lists_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    expected = {p.name for p in k8s_files()} - {SECRET_TEMPLATE.name}
    assert set(kustomization["resources"]) == expected
    assert kustomization["namespace"] == "omniroute"
    assert [i["name"] for i in kustomization["images"]] == ["omniroute"]
    for _, container in workloads().values():
        assert container["image"] == "omniroute", "the kustomization sets the image"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders():
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert kinds.count("Deployment") == 3
    assert "Secret" not in kinds, "apply -k must never overwrite the real Secret"


def test_manifests_hold_the_expected_objects():
    assert set(objects("Deployment")) == set(SERVICES)
    assert set(objects("Service")) == {"gateway", "router"}
    assert set(objects("PodDisruptionBudget")) == set(SERVICES)
    assert set(objects("HorizontalPodAutoscaler")) == {"gateway"}
    assert set(objects("ScaledObject")) == {"classifier", "router"}
    (job,) = objects("Job").values()
    assert workloads()[job["metadata"]["name"]][1]["args"] == ["migrate"]
    assert objects("Namespace").keys() == {"omniroute"}


def test_workload_settings_exist_and_parse(monkeypatch):
    for name, (_, container) in workloads().items():
        env = container_env(container)
        assert env["OMNIROUTE_ENV"] == "production"
        assert "OMNIROUTE_ADMIN_KEY" in env, f"{name}: production refuses to start without it"
        if name != "classifier":
            assert "OMNIROUTE_DATABASE_URL" in env, name
        check_settings_values(env, f"k8s {name}", monkeypatch)


def test_configmap_and_secret_template_name_only_settings(monkeypatch):
    names = set(configmap_data()) | set(secret_template()["stringData"])
    assert not names - known_settings(), names - known_settings()
    check_settings_values(configmap_data(), "ConfigMap", monkeypatch)


def test_secret_template_holds_only_placeholders_that_production_refuses(monkeypatch):
    values = secret_template()["stringData"]
    assert all("changeme" in str(v) for v in values.values()), "no real values in the template"
    monkeypatch.setenv("OMNIROUTE_ENV", "production")
    monkeypatch.setenv("OMNIROUTE_ADMIN_KEY", values["OMNIROUTE_ADMIN_KEY"])
    with pytest.raises(ValueError, match="placeholder"):
        settings_module.Settings().validate_for_production()


def test_containers_listen_where_ports_and_probes_point(monkeypatch):
    image_env = dockerfile_env()
    health_paths = {route.path for route in health_router({}).routes}  # type: ignore[attr-defined]
    assert {"/healthz", "/readyz", "/metrics"} <= health_paths
    for name, (obj, container) in workloads().items():
        env = {**image_env, **container_env(container)}
        params = parse_cli([str(a) for a in container["args"]], env, monkeypatch)
        if obj["kind"] == "Job":
            assert "ports" not in container
            continue
        assert container["args"][0] == name, "each Deployment runs the command it is named for"
        assert params["host"] == ALL_INTERFACES, f"{name} would listen on {params['host']} only"
        port = params["port"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert list(named.values()) == [port], f"{name}: containerPort is not {port}"

        def resolve(probe_port: int | str, named: dict[str, int] = named) -> int:
            return named[probe_port] if isinstance(probe_port, str) else probe_port

        probes = {k: container[k]["httpGet"] for k in container if k.endswith("Probe")}
        assert probes["readinessProbe"]["path"] == "/readyz", name
        assert probes["livenessProbe"]["path"] == "/healthz", name
        assert probes.get("startupProbe", {"path": "/healthz"})["path"] == "/healthz", name
        for kind, probe in probes.items():
            assert probe["path"] in health_paths
            assert resolve(probe["port"]) == port, f"{name} {kind} port"

        annotations = obj["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == port

        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name


def test_services_select_their_deployment_and_reach_its_port(monkeypatch):
    deployments = objects("Deployment")
    for name, service in objects("Service").items():
        deployment = deployments[name]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert (named[target] if isinstance(target, str) else target) in named.values()
    for name, pdb in objects("PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_selectors_match_their_pods():
    for name, deployment in objects("Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert selector["app.kubernetes.io/component"] == name


def test_autoscalers_target_deployments_that_leave_replicas_to_them():
    deployments = objects("Deployment")
    targets = [hpa["spec"]["scaleTargetRef"] for hpa in objects("HorizontalPodAutoscaler").values()]
    targets += [so["spec"]["scaleTargetRef"] for so in objects("ScaledObject").values()]
    names = [target["name"] for target in targets]
    assert sorted(names) == sorted(SERVICES), "each Deployment has exactly one autoscaler"
    for name in names:
        assert "replicas" not in deployments[name]["spec"], f"{name}: the autoscaler owns replicas"
    (hpa,) = objects("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_keda_watches_the_groups_and_topics_the_code_uses():
    config = configmap_data()
    bus = settings_module.BusSettings(bus=config["OMNIROUTE_BUS"])
    assert bus.is_kafka
    partitions = int(
        config.get("OMNIROUTE_BUS_PARTITIONS", settings_module.BusSettings().bus_partitions)
    )
    deployments = objects("Deployment")
    for name, scaled in objects("ScaledObject").items():
        target = scaled["spec"]["scaleTargetRef"]["name"]
        (container,) = deployments[target]["spec"]["template"]["spec"]["containers"]
        command = container["args"][0]
        group, topic = CONSUMERS[command]
        kafka = [t for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]
        assert len(kafka) == 1, name
        metadata = kafka[0]["metadata"]
        assert metadata["consumerGroup"] == group, name
        assert metadata["topic"] == topic, name
        assert metadata["topic"] in topics.ALL_TOPICS
        assert metadata["bootstrapServers"] == bus.bootstrap_servers, name
        assert int(metadata["lagThreshold"]) > 0
        # Members beyond the partition count get no partition: they would sit idle.
        assert scaled["spec"]["maxReplicaCount"] <= partitions, name
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert objects("ScaledObject")["classifier"]["spec"]["maxReplicaCount"] == partitions


def test_pods_run_unprivileged():
    for name, (obj, container) in workloads().items():
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        # The data directory (admin key fallback) must stay writable.
        data_dir = container_env(container).get("OMNIROUTE_DATA_DIR", "var")
        assert data_dir in mounts, f"{name}: {data_dir} is read-only"


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_builds_a_wheel_and_runs_it_unprivileged():
    lines = dockerfile_instructions()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", "\n".join(lines), re.M))
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage"
    assert all(
        f.replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"]) == "python:3.11-slim" for f in froms
    )
    text = "\n".join(lines)
    assert "python -m build --wheel" in text
    assert "[dev]" not in text, "no dev dependencies in the image"
    final = text.rsplit("FROM ", 1)[1]
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user, "the final stage sets a user"
    uid = user.group(1).split(":")[0].replace("${UID}", args.get("UID", "")).strip()
    assert uid not in ("", "0", "root"), "the final stage runs as a non-root user"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'ENTRYPOINT ["omniroute"]' in final
    assert "omniroute" in scripts
    exposed = {int(p) for line in lines if line.startswith("EXPOSE ") for p in line.split()[1:]}
    root = cli_root()
    defaults = {
        next(p.default for p in root.commands[name].params if p.name == "port") for name in SERVICES
    }
    assert exposed == defaults


def test_dockerignore_keeps_what_the_wheel_needs():
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allow-list"
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    for needed in ("pyproject.toml", readme, "omniroute/"):
        assert f"!{needed}" in rules, needed
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", "\n".join(dockerfile_instructions()), re.M)
    for sources in copied:
        for source in sources.split():
            assert f"!{source.rstrip('/')}" in rules or f"!{source.rstrip('/')}/" in rules, source
