"""deploy/ checked offline: compose, Kubernetes, Prometheus rules and the Grafana dashboard.

Nothing here starts a container or reaches a cluster. What is checked:
- every CAREWATCH_* variable the manifests set is a real setting;
- every metric the dashboard and the alert rules name is exported by carewatch, or listed
  below as another exporter's;
- `promtool check rules`, `promtool test rules` and `promtool check config`;
- every YAML file parses; the Kubernetes manifests pass the upstream schemas bundled in
  kubernetes-validate (strict: unknown fields fail), the CRDs (Strimzi, CloudNativePG,
  KEDA, Prometheus Operator) the small schemas below for the fields used; the compose
  file the compose specification's models (compose-pydantic) and structural checks.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from compose_pydantic.models import ComposeSpecification
from prometheus_client import REGISTRY

from carewatch.processes import BUILDERS
from plumbing import kafka
from plumbing.settings import PARTITIONS, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests are meant for

# The modules that define carewatch's metrics (prometheus_client registers on import).
METRIC_MODULES = [
    "ingest.metrics",
    "ingest.gateway_metrics",
    "alerts.metrics",
    "alerts.reconcile",
    "notifier.metrics",
    "api.app",
    "api.feed",
    "api.throttle",
    "plumbing.consumer",
    "plumbing.dead_letters",
    "plumbing.component",
    "carewatch.supervisor",
]

# Metrics the dashboard and the rules take from elsewhere, and from where.
EXTERNAL_METRICS = {
    "up": "Prometheus itself: 1 per target it scraped, 0 when the scrape failed",
    "probe_success": "blackbox exporter probing each process's /healthz (503 = 0)",
    "kafka_consumergroup_lag": "kafka-exporter (danielqsj/kafka-exporter, or Strimzi's)",
    "kafka_consumergroup_current_offset_sum": "kafka-exporter: a group's committed offsets",
    "kafka_topic_partition_current_offset": "kafka-exporter: a partition's end offset",
    "broker_publish_messages_dropped": "sapcc/mosquitto-exporter, $SYS/broker/publish/"
    "messages/dropped",
}

# PromQL words that are not metric names (aggregations may stand before `by (...)`).
_PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "sum", "min", "max", "avg", "count", "group", "stddev",
    "stdvar", "topk", "bottomk", "quantile", "count_values",
}  # fmt: skip


# --- helpers ------------------------------------------------------------------------------


def _yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += _yaml_docs(path)
    return docs


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _setting_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == "CAREWATCH_"
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def set_variables() -> dict[str, str]:
    """Every CAREWATCH_* variable deploy/ sets, with where."""
    found: dict[str, str] = {}
    for name, service in _compose()["services"].items():
        for key in _compose_env(service):
            found.setdefault(key, f"compose service {name}")
    for doc in _k8s_docs():
        where = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] == "ConfigMap":
            for key in doc.get("data", {}):
                found.setdefault(key, where)
        for container in _containers(doc):
            for item in container.get("env", []):
                found.setdefault(item["name"], where)
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    for key in re.findall(r"\b(CAREWATCH_[A-Z0-9_]+)=", dockerfile):
        found.setdefault(key, "deploy/Dockerfile")
    return {k: v for k, v in found.items() if k.startswith("CAREWATCH_")}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges, $__rate_interval
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def exported_metrics() -> set[str]:
    """The sample names carewatch's metrics expose (counters as _total, histograms as
    _bucket / _sum / _count)."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    suffixes = {
        "counter": ["_total", "_created"],
        "gauge": [""],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "summary": ["", "_sum", "_count", "_created"],
        "info": ["_info"],
    }
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("carewatch_"):
            names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def _alert_exprs() -> dict[str, str]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return {rule["alert"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def _dashboard_exprs() -> dict[str, str]:
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found[f"{path.name}: {panel['title']} ({target['refId']})"] = target["expr"]
    return found


# --- (a) settings -------------------------------------------------------------------------


def test_every_variable_set_is_a_setting() -> None:
    found = set_variables()
    assert "CAREWATCH_DATABASE_URL" in found and "CAREWATCH_MQTT_SHARE_GROUP" in found
    unknown = {name: where for name, where in found.items() if name not in _setting_names()}
    assert not unknown, f"not carewatch settings (plumbing/settings.py): {unknown}"


def test_a_misspelt_variable_would_be_caught() -> None:
    assert "CAREWATCH_KAFKA_BOOTSTRAPS" not in _setting_names()
    assert "CAREWATCH_KAFKA_BOOTSTRAP" in _setting_names()


# --- (b) metrics --------------------------------------------------------------------------


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'sum by (codec, le) (rate(carewatch_ingest_messages_total{codec="x"}[5m] offset 1h))'
        ' and on (codec) up{job=~"carewatch-.*"} == 0 or vector(0)'
    )
    assert metric_names(expr) == {"carewatch_ingest_messages_total", "up"}


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_used_is_exported(source: str) -> None:
    exprs = _alert_exprs() if source == "alerts" else _dashboard_exprs()
    exported = exported_metrics()
    used: dict[str, str] = {}
    for where, expr in exprs.items():
        for name in metric_names(expr):
            used.setdefault(name, where)
    assert any(name.startswith("carewatch_") for name in used)
    missing = {n: w for n, w in used.items() if n not in exported and n not in EXTERNAL_METRICS}
    assert not missing, f"neither exported by carewatch nor listed as external: {missing}"


def test_external_metrics_are_not_carewatchs() -> None:
    assert not set(EXTERNAL_METRICS) & exported_metrics()
    assert not any(name.startswith("carewatch_") for name in EXTERNAL_METRICS)


def test_exported_names_follow_the_client_suffixes() -> None:
    exported = exported_metrics()
    assert "carewatch_ingest_messages_total" in exported
    assert "carewatch_ingest_messages" not in exported
    assert "carewatch_ingest_produce_seconds_bucket" in exported
    assert "carewatch_worker_batch_age_seconds" in exported


# --- (c) promtool -------------------------------------------------------------------------


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
    pytest.skip("promtool not installed (apt-get install prometheus); CI runs these checks")


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def test_promtool_check_rules() -> None:
    _run(_promtool(), "check", "rules", ALERTS.name, cwd=ALERTS.parent)


def test_promtool_test_rules() -> None:
    _run(_promtool(), "test", "rules", ALERTS_TEST.name, cwd=ALERTS.parent)


def test_promtool_check_compose_prometheus_config(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]  # compose mounts it there
    config["rule_files"] = [str(ALERTS)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _run(_promtool(), "check", "config", "prometheus.yml", cwd=tmp_path)


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alert_exprs())
    assert alerts - firing == set(), "alerts never seen firing"
    assert alerts - quiet == set(), "alerts never seen quiet"


# --- (d) manifests ------------------------------------------------------------------------


def test_every_yaml_and_json_file_parses() -> None:
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    assert len(files) > 10
    for path in files:
        assert _yaml_docs(path), path
    for path in DEPLOY.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))


_META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
}
_INT = {"type": "integer", "minimum": 1}


def _crd(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _META,
            "spec": {"type": "object", "additionalProperties": False, **spec},
        },
    }


# The fields of each CRD these manifests use, typed as the operators' own CRDs define them
# (not their whole schemas: a field not listed here fails, so adding one means adding it).
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "KafkaTopic": _crd(
        "kafka.strimzi.io/v1beta2",
        "KafkaTopic",
        {
            "required": ["partitions", "replicas"],
            "properties": {
                "topicName": {"type": "string"},
                "partitions": _INT,
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {"type": "object"},
            },
        },
    ),
    "Cluster": _crd(
        "postgresql.cnpg.io/v1",
        "Cluster",
        {
            "required": ["instances", "storage"],
            "properties": {
                "instances": _INT,
                "imageName": {"type": "string"},
                "primaryUpdateStrategy": {"enum": ["supervised", "unsupervised"]},
                "bootstrap": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "initdb": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "database": {"type": "string"},
                                "owner": {"type": "string"},
                            },
                        }
                    },
                },
                "postgresql": {
                    "type": "object",
                    "properties": {
                        "parameters": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "storage": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {"size": {"type": "string"}},
                },
                "walStorage": {"type": "object", "properties": {"size": {"type": "string"}}},
                "resources": {"type": "object"},
                "monitoring": {
                    "type": "object",
                    "properties": {"enablePodMonitor": {"type": "boolean"}},
                },
            },
        },
    ),
    "ScaledObject": _crd(
        "keda.sh/v1alpha1",
        "ScaledObject",
        {
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": _INT,
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            # KEDA's trigger metadata is a map of strings.
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    ),
    "PodMonitor": _crd(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        {
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": {"type": "object"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string"},
                            "relabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    ),
}


def test_kubernetes_manifests_pass_their_schemas() -> None:
    docs = _k8s_docs()
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "StatefulSet", "PodDisruptionBudget", "Service"} <= kinds
    assert set(CRD_SCHEMAS) <= kinds
    for doc in docs:
        name = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] in CRD_SCHEMAS:
            try:
                jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{name}: {exc.message} at {list(exc.absolute_path)}")
        else:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {exc.message}")


def test_schema_validation_can_fail() -> None:
    deployment = next(d for d in _k8s_docs() if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    topic = next(d for d in _k8s_docs() if d["kind"] == "KafkaTopic")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**topic, "spec": {"partitions": "12"}}, CRD_SCHEMAS["KafkaTopic"])


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def _workloads() -> dict[str, dict[str, Any]]:
    """The process each Deployment / StatefulSet runs (its container's first argument)."""
    found = {}
    for doc in _k8s_docs():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            found[container["args"][0]] = doc
    return found


def test_every_process_runs_on_kubernetes_with_probes_and_a_budget() -> None:
    workloads = _workloads()
    assert set(workloads) == set(BUILDERS)
    budgets = {
        tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
        for d in _k8s_docs()
        if d["kind"] == "PodDisruptionBudget"
    }
    for process, doc in workloads.items():
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        settings = next(d for d in _k8s_docs() if d["kind"] == "ConfigMap")["data"]
        assert ports["metrics"] == int(settings["CAREWATCH_METRICS_PORT"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        selector = tuple(sorted(doc["spec"]["selector"]["matchLabels"].items()))
        assert selector in budgets, f"{process} has no PodDisruptionBudget"


def test_ingest_replicas_share_a_subscription_with_their_own_client_ids() -> None:
    ingest = _workloads()["ingest"]
    assert ingest["kind"] == "StatefulSet"  # stable pod names = stable MQTT sessions
    env = {e["name"]: e for e in ingest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CAREWATCH_MQTT_SHARE_GROUP"]["value"]
    assert env["CAREWATCH_INGEST_CLIENT_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    services = {
        name: s
        for name, s in _compose()["services"].items()
        if (s.get("command") or [None])[0] == "ingest"
    }
    assert len(services) > 1
    client_ids = [_compose_env(s)["CAREWATCH_INGEST_CLIENT_ID"] for s in services.values()]
    assert len(set(client_ids)) == len(client_ids)
    for service in services.values():
        assert _compose_env(service)["CAREWATCH_MQTT_SHARE_GROUP"]
        assert (service.get("deploy") or {}).get("replicas", 1) == 1


def test_autoscaling_follows_consumer_groups_and_partitions() -> None:
    defaults = Settings()
    groups = {
        "rules": (defaults.rules_group, kafka.EVENTS_TOPIC),
        "telemetry": (defaults.telemetry_group, kafka.EVENTS_TOPIC),
        "notifier": (defaults.notifier_group, kafka.ALERTS_TOPIC),
    }
    workloads = {doc["metadata"]["name"]: p for p, doc in _workloads().items()}
    scaled = [d for d in _k8s_docs() if d["kind"] == "ScaledObject"]
    assert {workloads[d["spec"]["scaleTargetRef"]["name"]] for d in scaled} == set(groups)
    for doc in scaled:
        process = workloads[doc["spec"]["scaleTargetRef"]["name"]]
        (trigger,) = doc["spec"]["triggers"]
        meta = trigger["metadata"]
        assert (meta["consumerGroup"], meta["topic"]) == groups[process]
        assert doc["spec"]["maxReplicaCount"] <= PARTITIONS
        bootstrap = next(d for d in _k8s_docs() if d["kind"] == "ConfigMap")["data"]
        assert meta["bootstrapServers"] == bootstrap["CAREWATCH_KAFKA_BOOTSTRAP"]


def _wanted_topics() -> dict[str, int]:
    partitions = PARTITIONS  # a Kafka of one's own
    return {
        kafka.EVENTS_TOPIC: partitions,
        kafka.ALARMS_TOPIC: partitions,
        kafka.ALERTS_TOPIC: partitions,
        kafka.DLQ_TOPIC: kafka._DLQ_PARTITIONS,
    }


def test_topics_are_carewatchs() -> None:
    strimzi = {
        d["spec"].get("topicName", d["metadata"]["name"]): d["spec"]["partitions"]
        for d in _k8s_docs()
        if d["kind"] == "KafkaTopic"
    }
    assert strimzi == _wanted_topics()
    init = _compose_env(_compose()["services"]["kafka-init"])["TOPICS"]
    compose = {name: int(n) for name, n, _ in (spec.split(":") for spec in init.split())}
    assert compose == _wanted_topics()


def test_compose_file_follows_the_compose_specification() -> None:
    data = _compose()
    spec = {k: v for k, v in data.items() if not k.startswith("x-")}  # extensions
    ComposeSpecification.model_validate(spec)


def test_compose_structure() -> None:
    data = _compose()
    services = data["services"]
    volumes = set(data.get("volumes") or {})
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dep in service.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
    processes = {
        name: s["command"][0]
        for name, s in services.items()
        if s.get("command") and s["command"][0] in BUILDERS
    }
    assert set(processes.values()) == set(BUILDERS)
    # Prometheus scrapes every carewatch service.
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    scraped = {
        name
        for job in prometheus["scrape_configs"]
        if job["job_name"].startswith("carewatch-") and job["job_name"] != "carewatch-healthz"
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    assert scraped == set(processes)
    port = {_compose_env(services[n]).get("CAREWATCH_METRICS_PORT") for n in processes}
    assert port == {"9100"}


def test_compose_mosquitto_uses_the_shipped_configuration() -> None:
    mosquitto = _compose()["services"]["mosquitto"]
    assert "../mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in mosquitto["volumes"]
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    plugin = re.search(r"^plugin (\S+)", conf, re.M)
    assert plugin and Path(plugin.group(1)).name in " ".join(mosquitto["command"])


def test_grafana_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    for path in DASHBOARDS.glob("*.json"):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] in uids, panel["title"]
