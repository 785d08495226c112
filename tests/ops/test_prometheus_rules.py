"""The shipped Prometheus config and alert rules (ops/prometheus/) match what the services expose.

A metric renamed in the code would otherwise leave its alert silently evaluating nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from backend.core.settings import SERVICE_NAMES, Settings
from backend.runtime.server import PlatformThread

OPS = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
METRIC_NAME = re.compile(r"\bmpac_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OPS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def exposed(platform: PlatformThread, test_settings: Settings) -> set[str]:
    """Every series name the four services expose (families without samples included)."""
    names: set[str] = set()
    for service in SERVICE_NAMES:
        with httpx.Client(base_url=test_settings.url_of(service), timeout=10) as client:
            client.get("/healthz")
            text = client.get("/metrics").text
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
            names.update(sample.name for sample in family.samples)
    return names


def test_every_rule_is_complete() -> None:
    rules = _rules()
    assert rules
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"page", "warn"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_metric_an_alert_reads_is_exposed(rule: dict[str, Any], exposed: set[str]) -> None:
    used = set(METRIC_NAME.findall(rule["expr"]))
    assert used, f"{rule['alert']} reads no mpac metric"
    missing = used - exposed
    assert not missing, f"{rule['alert']} reads metrics no service exposes: {sorted(missing)}"


def test_the_scrape_config_loads_the_rules_and_targets_every_service() -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    (targets,) = [entry["targets"] for entry in job["static_configs"]]
    # The defaults as written, not as this shell's MPAC_* may set them.
    ports = [Settings.model_fields[f"{service}_port"].default for service in SERVICE_NAMES]
    assert targets == [f"127.0.0.1:{port}" for port in ports]
