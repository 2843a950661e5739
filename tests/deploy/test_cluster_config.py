"""Every Ray cluster launcher file in the repository is valid for the Ray we pin:
checked against the JSON schema that ships inside Ray, then filled with the
provider's defaults and validated the way `ray up` does."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from actors.ray_env import RAY_ENV

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILES = sorted([ROOT / "ray_cluster.yaml", *(ROOT / "deploy").glob("ray_cluster*.yaml")])


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cluster_file_is_valid(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    schema = json.loads((Path(os.path.dirname(ray.__file__)) / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(config))


def test_node_types_carry_the_resources_the_actors_ask_for() -> None:
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    types = config["available_node_types"]
    assert types["gateway"]["resources"].get("gateway", 0) >= 1
    assert types["stream"]["resources"].get("stream", 0) >= 1
    for kind in ("gateway", "stream"):
        assert types[kind]["min_workers"] <= types[kind]["max_workers"]


def test_the_resource_names_are_the_ones_the_code_asks_for() -> None:
    from actors.placement import GATEWAY_RESOURCE, REGISTRY_RESOURCE, STREAM_RESOURCE

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    types = config["available_node_types"]
    assert set(types["gateway"]["resources"]) - {"CPU"} == {GATEWAY_RESOURCE}
    assert set(types["stream"]["resources"]) - {"CPU"} == {STREAM_RESOURCE}
    assert f'"{REGISTRY_RESOURCE}": 1' in " ".join(config["head_start_ray_commands"])
    start = (ROOT / "deploy" / "node-start.sh").read_text()
    assert f'{{"{GATEWAY_RESOURCE}": 1}}' in start and f'{{"{STREAM_RESOURCE}": 100}}' in start


def test_every_onprem_worker_host_has_a_role() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "ray_cluster.onprem.yaml").read_text())
    roles = {}
    for line in (ROOT / "deploy" / "onprem-roles.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            host, role = line.split()
            roles[host] = role
    assert set(roles) == set(config["provider"]["worker_ips"])
    assert set(roles.values()) == {"gateway", "stream"}
    assert config["provider"]["head_ip"] not in roles


START_FILES = [
    ROOT / "ray_cluster.yaml",
    *(ROOT / "deploy").glob("ray_cluster*.yaml"),
    ROOT / "deploy" / "node-start.sh",
]


@pytest.mark.parametrize("path", START_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_ray_and_gateway_start_carries_the_ray_environment(path: Path) -> None:
    """`actors/ray_env.py` is what our own starters set; the launcher files spell it out by hand."""
    text = path.read_text()
    starts = [line for line in text.splitlines() if re.search(r'ray"? start', line) or "Environment=RAY" in line]
    assert starts, f"no `ray start` or gateway unit in {path}"
    for line in starts:
        for name, value in RAY_ENV.items():
            assert f"{name}={value}" in line, f"{path.name}: {line.strip()!r} lacks {name}={value}"


AUTOSCALE_LOCAL = ROOT / "deploy" / "autoscale_local.yaml"


def test_the_one_host_autoscaling_config_is_valid_for_the_autoscaler() -> None:
    """Checked as the autoscaler on the head reads it (`ray up`'s filling-in of provider defaults
    needs a file the Ray wheel does not ship for the fake provider, and `ray up` is not used)."""
    config = yaml.safe_load(AUTOSCALE_LOCAL.read_text())
    schema = json.loads((Path(os.path.dirname(ray.__file__)) / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(config)
    assert config["provider"]["type"] == "fake_multinode"


def test_the_one_host_autoscaling_config_has_the_node_types_and_resources_of_ray_cluster_yaml() -> None:
    """The same worker node types, each offering the same resources (amounts aside: a few streams
    fill a node on one host), and a head offering what the real head offers."""
    real = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    local = yaml.safe_load(AUTOSCALE_LOCAL.read_text())
    real_types, local_types = real["available_node_types"], local["available_node_types"]
    real_workers = {k: v for k, v in real_types.items() if k != real["head_node_type"]}
    local_workers = {k: v for k, v in local_types.items() if k != local["head_node_type"]}
    assert set(local_workers) == set(real_workers)
    for kind, spec in real_workers.items():
        assert set(local_workers[kind]["resources"]) == set(spec["resources"]), kind
        assert all(v > 0 for v in local_workers[kind]["resources"].values()), kind
    real_head = set(real_types[real["head_node_type"]]["resources"])
    assert set(local_types[local["head_node_type"]]["resources"]) == real_head
    assert local_types[local["head_node_type"]]["max_workers"] == 0


def test_every_node_of_the_cloud_cluster_loads_the_gcs_fault_tolerance_settings() -> None:
    """The head needs the Redis address; every node and gateway the GCS reconnect time-out (cloud and
    on-premises files alike)."""
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all(c.startswith("set -a && . /home/ubuntu/ray-ft.env && set +a && ") for c in starts)
    assert config["file_mounts"]["/home/ubuntu/ray-ft.env"] == "./deploy/ray-ft.env"
    assert "EnvironmentFile=/home/ubuntu/ray-ft.env" in " ".join(
        config["available_node_types"]["gateway"]["worker_setup_commands"]
    )
    onprem = yaml.safe_load((ROOT / "deploy" / "ray_cluster.onprem.yaml").read_text())
    assert onprem["head_start_ray_commands"][-1].startswith("set -a && . ~/wrencos/deploy/ray-ft.env && set +a && ")
    start = (ROOT / "deploy" / "node-start.sh").read_text()
    assert (
        start.index('. "$here/ray-ft.env"') < start.index('ray" start') and "EnvironmentFile=$here/ray-ft.env" in start
    )
    settings = [line for line in (ROOT / "deploy" / "ray-ft.env").read_text().splitlines() if not line.startswith("#")]
    assert all(re.fullmatch(r"RAY_\w+=\S+", line) for line in settings if line.strip()), settings
