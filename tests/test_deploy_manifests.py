"""deploy/: the Kubernetes manifests and the Prometheus alert rules parse, hang together, and
keep the promises of docs/operations.md (probes, security context, writable paths, shutdown).

No cluster is involved: these are static checks, plus one real scrape of /metrics so that every
metric an alert names exists, and `promtool check rules` when promtool is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pulseplan.app import create_app
from pulseplan.settings import Settings
from tests.redis_kit import REDIS_URL
from tests.redis_kit import require_redis
from tests.redis_kit import unique_prefix

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRACEFUL_TIMEOUT = 20  # `pulseplan serve --graceful-timeout` default
#: Read by `pulseplan serve` (click options) or prometheus-client, not by Settings.
PROCESS_ENV = {"PULSEPLAN_HOST", "PULSEPLAN_PORT", "PULSEPLAN_WORKERS", "PROMETHEUS_MULTIPROC_DIR"}
PROVIDER_ENV = re.compile(
    r"^(GOOGLE|MICROSOFT|CANVAS|NOTION)_(CLIENT_ID|CLIENT_SECRET|SCOPES|AUTHORIZE_URL|TOKEN_URL"
    r"|REVOKE_URL|USERINFO_URL|TENANT_ID|AUTHORITY|BASE_URL|PKCE|TOKENINFO_URL|VERSION)$"
)


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None or doc.get("kind") == "Kustomization":
                continue
            for field in ("apiVersion", "kind", "metadata"):
                assert field in doc, f"{path.name}: no {field}"
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in docs, f"{key} defined twice"
            docs[key] = doc
    return docs


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    return documents()


@pytest.fixture(scope="module")
def deployment(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return manifests[("Deployment", "pulseplan")]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_every_manifest_parses_and_the_kustomization_lists_existing_files() -> None:
    kinds = {kind for kind, _ in documents()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} <= kinds
    assert {"HorizontalPodAutoscaler", "Job"} <= kinds
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (KUBE / resource).is_file(), resource
    # The example Secret holds placeholders: it must never be applied by `kubectl apply -k`.
    assert "secret.example.yaml" not in kustomization["resources"]


def test_probes(deployment: dict[str, Any]) -> None:
    main = container(deployment)
    startup, live, ready = main["startupProbe"], main["livenessProbe"], main["readinessProbe"]
    assert startup["httpGet"]["path"] == "/api/v1/health/live"
    assert live["httpGet"]["path"] == "/api/v1/health/live"
    assert ready["httpGet"]["path"] == "/api/v1/health/ready"
    for probe in (startup, live, ready):
        assert probe["httpGet"]["port"] == "http"
        # /ready answers within 1 s by design; the timeout leaves headroom for a busy worker.
        assert 1 <= probe["timeoutSeconds"] <= probe["periodSeconds"]
    # Liveness is slower to give up than readiness: an overloaded pod leaves the Service
    # before it gets restarted.
    assert (
        live["failureThreshold"] * live["periodSeconds"]
        > ready["failureThreshold"] * ready["periodSeconds"]
    )
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 30


def test_security_context(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    # Service links would set PULSEPLAN_PORT=tcp://... for the Service called pulseplan.
    assert pod["enableServiceLinks"] is False
    security = container(deployment)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    # The uid the image declares (Containerfile USER 10001:10001).
    user = re.search(r"^USER (\d+)", (ROOT / "Containerfile").read_text(), re.M)
    assert user is not None
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))


def test_writable_paths_are_empty_dirs(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    # The data dir (PULSEPLAN_DATA_DIR in the image), /tmp, and the multiprocess metrics dir.
    assert {"/var/lib/pulseplan", "/tmp", "/run/pulseplan"} <= mounts.keys()
    for name in mounts.values():
        assert "emptyDir" in volumes[name], f"volume {name} must be an emptyDir"


def test_shutdown_fits_the_grace_period(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + GRACEFUL_TIMEOUT + 1


def test_resources_port_image_and_config(
    deployment: dict[str, Any], manifests: dict[tuple[str, str], dict[str, Any]]
) -> None:
    main = container(deployment)
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= main["resources"][kind].keys()
    assert main["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert ":" in main["image"]
    assert not main["image"].endswith(":latest")
    sources = main["envFrom"]
    assert ("ConfigMap", sources[0]["configMapRef"]["name"]) in manifests
    assert ("Secret", sources[1]["secretRef"]["name"]) in manifests


def test_service_pdb_and_hpa_select_the_deployment(
    deployment: dict[str, Any], manifests: dict[tuple[str, str], dict[str, Any]]
) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = manifests[("Service", "pulseplan")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = manifests[("PodDisruptionBudget", "pulseplan")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = manifests[("HorizontalPodAutoscaler", "pulseplan")]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "pulseplan")
    assert hpa["spec"]["minReplicas"] >= 2, "one pod cannot honour the PodDisruptionBudget"
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_the_migration_job_matches_the_deployment(
    deployment: dict[str, Any], manifests: dict[tuple[str, str], dict[str, Any]]
) -> None:
    job = manifests[("Job", "pulseplan-migrate")]
    migrate = container(job)
    assert migrate["args"] == ["migrate"]
    assert migrate["image"] == container(deployment)["image"]
    assert migrate["envFrom"] == container(deployment)["envFrom"]
    assert migrate["securityContext"] == container(deployment)["securityContext"]


def known_setting(name: str) -> bool:
    return (
        name.lower() in Settings.model_fields
        or name in PROCESS_ENV
        or bool(PROVIDER_ENV.match(name))
    )


def test_config_names_are_settings_the_app_reads(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    config = manifests[("ConfigMap", "pulseplan-config")]["data"]
    secret = manifests[("Secret", "pulseplan-secrets")]["stringData"]
    for name in [*config, *secret]:
        assert known_setting(name), f"{name} is not a setting PulsePlan reads"
    assert all(isinstance(value, str) for value in config.values()), "ConfigMap values are strings"


def test_the_example_secret_is_refused_in_production(
    manifests: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    environ = {
        **manifests[("ConfigMap", "pulseplan-config")]["data"],
        **manifests[("Secret", "pulseplan-secrets")]["stringData"],
        "PULSEPLAN_DATA_DIR": str(tmp_path),
    }
    settings = Settings.load(environ, env_file=None, generate_dev_secrets=False)
    problems = "\n".join(settings.problems())
    for name in ("TOKEN_ENCRYPTION_KEY", "SECRET_KEY", "SUPABASE_JWT_SECRET"):
        assert name in problems, f"the placeholder {name} must not pass production checks"


# --------------------------------------------------------------------------- Prometheus


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    assert len(rules) >= 8
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


async def test_every_metric_an_alert_uses_is_exported(make_settings: Any) -> None:
    # With Redis configured, so the Redis gauges are exported too.
    await require_redis()
    app = create_app(make_settings(REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=unique_prefix()))
    async with app.test_app():
        response = await app.test_client().get("/metrics")
        assert response.status_code == 200
        text = (await response.get_data()).decode()
    exported: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if kind == "histogram":
            exported |= {name + suffix for suffix in ("_bucket", "_sum", "_count")}
        elif kind == "counter":
            exported.add(name.removesuffix("_total") + "_total")
        else:
            exported.add(name)
    used = {m for rule in alert_rules() for m in re.findall(r"\bpulseplan_[a-z_]+", rule["expr"])}
    assert used, "the rules should use PulsePlan's own metrics"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


@pytest.mark.parametrize(
    "command",
    [["check", "rules", str(ALERTS)], ["test", "rules", str(ALERTS.with_suffix(".test.yml"))]],
    ids=["check", "unit-tests"],
)
def test_promtool_accepts_the_rules(command: list[str]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    result = subprocess.run(
        [promtool, *command],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    script = ROOT / "deploy" / "build-image.sh"
    result = subprocess.run(
        [shellcheck, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
