"""Node facts for Kubernetes: the NFD local feature file the agent writes after each scan (format as
nfd-worker's local source reads it, valid Kubernetes label names and values, atomic, expiring)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from datetime import datetime

import pytest
from agent_server import Prober
from conftest import SNAPSHOTS

from fitagent.agent.config import Config, ConfigError, load_config
from fitagent.agent.fleet.nfd import PREFIX, bandwidth_class, label_name
from fitagent.agent.hardware import load_snapshot_file
from fitagent.agent.server import EXTENSION, create_app
from fitagent.estimator.hardware import snapshot_from_dict

SMALL = Config(contexts=(8192,), use_cases=("general",), token="t")
# Kubernetes' label rules: an optional DNS-subdomain prefix, a name of ≤ 63, a value of ≤ 63
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def parse_feature_file(text: str) -> tuple[dict[str, str], list[str]]:
    """As NFD's local source does: `<name>[=<value>]` per line (value true when absent), `#`
    comments, `# +directive=` lines."""
    labels, directives = {}, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# +"):
            directives.append(line[3:])
        elif line and not line.startswith("#"):
            name, _, value = line.partition("=")
            labels[name] = value if _ else "true"
    return labels, directives


def scanned(tmp_path, fixture: str, config: Config = SMALL, snapshot=None):
    path = tmp_path / "features.d" / "fitagent"
    path.parent.mkdir(exist_ok=True)
    config = replace(config, nfd_features_file=str(path))
    snapshot = snapshot or load_snapshot_file(SNAPSHOTS / f"{fixture}.json")
    prober = Prober(snapshot)
    app = create_app(config, prober=prober, start=False)
    agent = app.extensions[EXTENSION]
    agent.scan_once()
    return agent, path, prober


def test_the_feature_file_nfd_reads(tmp_path):
    agent, path, _ = scanned(tmp_path, "2x3090")
    text = path.read_text()
    labels, directives = parse_feature_file(text)
    assert len(text.encode()) < 64 * 1024  # NFD ignores larger files
    for name, value in labels.items():
        assert name.startswith(PREFIX) and NAME.match(name) and len(name.split("/")[1]) <= 63, name
        assert VALUE.match(value) and len(value) <= 63, (name, value)
    (expiry,) = [d for d in directives if d.startswith("expiry-time=")]
    expires = datetime.strptime(expiry.split("=", 1)[1], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert expires == pytest.approx(agent.state.scanned_at + 3 * SMALL.rescan_interval_s + 60, abs=1)
    f = {name.removeprefix(PREFIX): value for name, value in labels.items()}
    assert f["gpus"] == "2" and f["gpu-free-gb"] == "50" and f["gpu-free-max-gb"] == "25"  # 50.2 GB free: down
    assert f["bandwidth-class"] == "high" and f["bandwidth-gbps"] == "936"  # RTX 3090: 936 GB/s
    assert int(f["largest-model-params-b"]) >= 30 and f["largest-model"]
    assert (
        f["fits.llama-3.1-8b-instruct.q4_k_m"] == "true" and int(f["max-context.llama-3.1-8b-instruct.q4_k_m"]) > 8192
    )
    assert [p.name for p in path.parent.iterdir()] == ["fitagent"]  # no temporary file left behind


def test_a_cpu_only_node(tmp_path):
    _, path, _ = scanned(tmp_path, "cpu-only")
    f = {k.removeprefix(PREFIX): v for k, v in parse_feature_file(path.read_text())[0].items()}
    assert (f["gpus"], f["gpu-free-gb"], f["bandwidth-class"]) == ("0", "0", "cpu")
    assert int(f["ram-available-gb"]) == 257


def test_rewritten_after_each_scan_with_the_watch_list(tmp_path):
    from fitagent.agent.config import WatchedModel

    data = json.loads((SNAPSHOTS / "rtx4090.json").read_text())
    config = replace(SMALL, watch_models=(WatchedModel("meta-llama/Llama-3.1-70B-Instruct", "Q4_K_M", 4096),))
    agent, path, prober = scanned(tmp_path, "rtx4090", config, snapshot_from_dict(data))
    f = {k.removeprefix(PREFIX): v for k, v in parse_feature_file(path.read_text())[0].items()}
    assert f["gpu-free-gb"] == "24" and f["fits.llama-3.1-70b-instruct.q4_k_m.4096"] == "false"
    data["gpus"][0]["memory_free_bytes"] = 2_000_000_000  # something took the GPU
    prober.items = [snapshot_from_dict(data)]
    agent.scan_once()
    f = {k.removeprefix(PREFIX): v for k, v in parse_feature_file(path.read_text())[0].items()}
    assert f["gpu-free-gb"] == "2" and f["fits.llama-3.1-8b-instruct.q4_k_m"] == "false"


def test_a_write_that_fails_is_logged_and_the_scan_still_succeeds(tmp_path, caplog):
    config = replace(SMALL, nfd_features_file=str(tmp_path / "no-such-dir" / "fitagent"))
    app = create_app(config, prober=Prober(load_snapshot_file(SNAPSHOTS / "rtx4090.json")), start=False)
    agent = app.extensions[EXTENSION]
    with caplog.at_level(logging.WARNING, logger="fitagent.agent"):
        agent.scan_once()
        agent.scan_once()
    assert agent.state.ready and agent.state.error is None
    warnings = [r.getMessage() for r in caplog.records if "node features" in r.getMessage()]
    assert len(warnings) == 1 and "no-such-dir" in warnings[0]  # once, not every scan


def test_no_file_by_default(tmp_path):
    app = create_app(SMALL, prober=Prober(load_snapshot_file(SNAPSHOTS / "rtx4090.json")), start=False)
    app.extensions[EXTENSION].scan_once()
    assert Config().nfd_features_file is None and list(tmp_path.iterdir()) == []


def test_label_names_and_classes():
    long = label_name("max-context." + "x" * 80 + ".q4_k_m")
    assert NAME.match(long) and len(long.split("/")[1]) == 63
    assert label_name("fits.Qwen/Qwen2.5 7B") == PREFIX + "fits.qwen-qwen2.5-7b"
    assert [bandwidth_class(b, True) for b in (3.35e12, 936e9, 448e9, 100e9, None)] == [
        "hbm",
        "high",
        "mid",
        "low",
        "low",
    ]
    assert bandwidth_class(None, False) == "cpu"


@pytest.mark.parametrize(
    "value, message",
    [
        ("features.d/fitagent", "must be an absolute path"),
        ("/etc/kubernetes/node-feature-discovery/features.d/.fitagent", "does not start with a dot"),
        (3, "must be a non-empty string"),
    ],
)
def test_config_key_is_checked(tmp_path, value, message):
    path = tmp_path / "fitagent.yaml"
    path.write_text(json.dumps({"nfd_features_file": value}))
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_config_key_from_the_environment_and_the_example():
    config = load_config(
        None,
        environ={
            "FITAGENT_NFD_FEATURES_FILE": "/etc/kubernetes/node-feature-discovery/features.d/fitagent",
            "XDG_CONFIG_HOME": "/nonexistent",
        },
    )
    assert config.nfd_features_file == "/etc/kubernetes/node-feature-discovery/features.d/fitagent"
    example = (SNAPSHOTS.parents[2] / "config" / "fitagent.yaml").read_text()
    assert "\nnfd_features_file: null\n" in example
