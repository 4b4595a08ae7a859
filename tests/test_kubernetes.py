"""deploy/kubernetes/: every manifest validated offline against Kubernetes' own schemas
(kubernetes-validate, strict: no unknown fields), the ServiceMonitor against the fields the
Prometheus Operator defines, and the pieces agreeing with each other and with the agent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import SNAPSHOTS

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (the test extra)"
)
jsonschema = pytest.importorskip("jsonschema")

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")  # the oldest still supported upstream when written, and a recent one
NFD_DIR = "/etc/kubernetes/node-feature-discovery/features.d"


def documents() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(DEPLOY.glob("*.yaml"))}


def one(kind: str, name: str | None = None) -> dict:
    found = [
        d
        for docs in documents().values()
        for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version):
    checked = []
    for filename, docs in documents().items():
        for doc in docs:
            if doc["kind"] in ("Kustomization", "ServiceMonitor"):
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{filename}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at "
                    f"{'.'.join(str(p) for p in exc.path)}"
                )
            checked.append(doc["kind"])
    assert sorted(checked) == ["ConfigMap", "DaemonSet", "Deployment", "Namespace", "NetworkPolicy", "Service"]


# The ServiceMonitor fields used here, as monitoring.coreos.com/v1 defines them (a subset of the
# CRD's schema, strict where this manifest is: no field it does not define).
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object"}},
                    "additionalProperties": False,
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {
                                "type": "string",
                                "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                            },
                            "scrapeTimeout": {
                                "type": "string",
                                "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
                            },
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "sourceLabels": {
                                            "type": "array",
                                            "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                                        },
                                        "targetLabel": {"type": "string"},
                                        "action": {"type": "string"},
                                        "regex": {"type": "string"},
                                        "replacement": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_the_service_monitor_selects_the_service_and_its_port():
    monitor = one("ServiceMonitor")
    jsonschema.validate(monitor, SERVICE_MONITOR)
    service = one("Service", "fitagent")
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    assert spec["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert service["metadata"]["labels"][spec["jobLabel"]] == "fitagent"  # job="fitagent", as the alerts expect


def test_the_daemonset_runs_the_agent_as_documented():
    ds = one("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and pod["runtimeClassName"] == "nvidia"
    assert "nvidia.com/gpu" not in str(container["resources"])  # watches the GPUs, claims none
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["nfd-features"] == NFD_DIR and volumes["nfd-features"]["hostPath"]["path"] == NFD_DIR
    assert volumes["config"]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert container["args"] == ["serve", "--config", f"{mounts['config']}/fitagent.yaml"]
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def configured():
    from fitagent.agent.config import config_from_mapping

    text = one("ConfigMap")["data"]["fitagent.yaml"]
    return config_from_mapping(yaml.safe_load(text), "configmap.yaml")


def test_the_config_map_is_a_valid_agent_config():
    config = configured()
    assert (
        config.host == "0.0.0.0"
        and config.port == one("DaemonSet")["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    )
    assert config.nfd_features_file == f"{NFD_DIR}/fitagent"


def test_the_example_deployment_matches_labels_the_agent_writes(tmp_path, catalog):
    """Every node-affinity key of the example is a label the agent (with the ConfigMap's config)
    writes, and its free-memory threshold holds the model's estimated total."""
    from dataclasses import replace

    from agent_server import Prober

    from fitagent.agent.fleet.nfd import PREFIX, render
    from fitagent.agent.hardware import load_snapshot_file
    from fitagent.agent.server import EXTENSION, create_app
    from fitagent.estimator.estimate import estimate
    from fitagent.estimator.results import Options

    config = replace(configured(), contexts=(8192,), use_cases=("general",), nfd_features_file=None)
    app = create_app(config, prober=Prober(load_snapshot_file(SNAPSHOTS / "2x3090.json")), start=False)
    agent = app.extensions[EXTENSION]
    agent.scan_once()
    written = dict(
        line.split("=", 1)
        for line in render(agent.state, config, agent.catalog).splitlines()
        if not line.startswith("#")
    )
    affinity = one("Deployment")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["preference"]["matchExpressions"]
    for expression in required + preferred:
        assert expression["key"].startswith(PREFIX) and expression["key"] in written, expression["key"]
    free = next(e for e in required if e["key"] == PREFIX + "gpu-free-gb")
    e = estimate(
        catalog.model("Llama-3.1-70B-Instruct"),
        catalog.quant("Q4_K_M"),
        agent.state.computed.budget,
        catalog,
        Options(context=8192),
    )
    assert free["operator"] == "Gt" and (int(free["values"][0]) + 1) * 1e9 >= e.total_bytes
    assert written[PREFIX + "fits.llama-3.1-70b-instruct.q4_k_m.8192"] == "true"  # two 3090s: it fits


def test_kustomization_lists_every_manifest_but_the_example():
    listed = one("Kustomization")["resources"]
    assert sorted(listed) == sorted(
        n for n in documents() if n not in ("kustomization.yaml", "example-deployment.yaml")
    )
