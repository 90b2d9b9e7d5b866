"""deploy/: the compose file, the Kubernetes manifests and their nginx configurations agree with the code.

The nginx configurations must be exactly what `parley nginx-config` prints
for the ports, names and DNS the manifests declare; nginx must accept them;
every PARLEY_* variable must be a real setting; probes and health checks use
the server's gRPC health service on its port; drains fit in the grace periods.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from parley.fleet.nginx import Discovered, NginxSettings, render
from parley.fleet.routing import SESSION_HEADER
from parley.settings import LEAVES
from tests.fleet.support import nginx_binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SETTINGS_ENV = {leaf.env for leaf in LEAVES}
CONFIG_IN_IMAGE = "/etc/parley/nginx.conf"
K8S_DNS = "kube-dns.kube-system.svc.cluster.local"


def seconds(text: str | int) -> float:
    return float(str(text).removesuffix("s"))


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_nginx_configurations_are_the_generators_output(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", DEPLOY / "render.sh", tmp_path], check=True, env=env)
    for name in ("compose/nginx.conf", "kubernetes/nginx.conf"):
        assert (DEPLOY / name).read_text() == (tmp_path / name).read_text(), f"run deploy/render.sh: {name} is stale"


@pytest.mark.parametrize("name", ["compose/nginx.conf", "kubernetes/nginx.conf"])
def test_nginx_accepts_the_configurations(name: str, tmp_path: Path) -> None:
    text = (DEPLOY / name).read_text()
    # the cluster's DNS name does not resolve here, and the test may not run as root
    text = re.sub(r"resolver \S+", "resolver 127.0.0.1", text).replace("pid /run/nginx.pid", f"pid {tmp_path}/pid")
    if os.geteuid() != 0:
        text = re.sub(r"^user .*\n", "", text, flags=re.MULTILINE)
    (tmp_path / "nginx.conf").write_text(text)
    checked = subprocess.run([nginx_binary(), "-t", "-c", tmp_path / "nginx.conf", "-p", tmp_path,
                              "-e", tmp_path / "error.log"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert f"$http_{SESSION_HEADER.replace('-', '_')}" in text


def test_the_image_runs_nginx_with_the_mounted_configuration() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"-c", "{CONFIG_IN_IMAGE}"' in dockerfile
    assert "apt-get install -y --no-install-recommends nginx " in dockerfile  # Debian's nginx


def check_parley_env(env: dict[str, str]) -> None:
    assert set(env) <= SETTINGS_ENV, f"not settings: {set(env) - SETTINGS_ENV}"
    assert int(env["PARLEY_PORT"]) != int(env["PARLEY_START_PORT"])


def test_compose() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {name: s for name, s in services.items() if name.startswith("parley-")}
    assert len(replicas) >= 2
    envs = [s["environment"] for s in replicas.values()]
    for name, service in replicas.items():
        env = {k: str(v) for k, v in service["environment"].items()}
        check_parley_env(env)
        assert env["PARLEY_REPLICA_ID"] == name  # the replica id is the host name the proxy resolves
        assert "parley-ready" in service["networks"]["default"]["aliases"]
        assert service["healthcheck"]["test"][1:] == ["parley", "health", "--address",
                                                      f"127.0.0.1:{env['PARLEY_PORT']}"]
        assert seconds(service["stop_grace_period"]) > float(env["PARLEY_DRAIN_TIMEOUT"])
    ports = {(e["PARLEY_PORT"], e["PARLEY_START_PORT"]) for e in envs}
    assert len(ports) == 1, "every replica listens on the same ports"
    port, start_port = (int(p) for p in ports.pop())

    discovered = Discovered("parley-[0-9]+", "{replica}", "parley-ready", port, start_port, "127.0.0.11")
    expected = NginxSettings(listen="0.0.0.0:50051", user="www-data", fleet=discovered)
    assert (DEPLOY / "compose" / "nginx.conf").read_text() == render(expected)
    assert all(re.fullmatch(discovered.replica_pattern, name) for name in replicas)
    proxy = services["proxy"]
    assert proxy["volumes"] == [f"./compose/nginx.conf:{CONFIG_IN_IMAGE}:ro"]
    assert proxy["ports"] == [f"{expected.listen.rsplit(':', 1)[1]}:{expected.listen.rsplit(':', 1)[1]}"]


def test_kubernetes() -> None:
    folder = DEPLOY / "kubernetes"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    namespace = kustomization["namespace"]
    objects = [d for r in kustomization["resources"] for d in documents(folder / r)]
    by_kind_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    sts = by_kind_name[("StatefulSet", "parley")]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env) <= SETTINGS_ENV, f"not settings: {set(env) - SETTINGS_ENV}"
    replica_id = next(e for e in container["env"] if e["name"] == "PARLEY_REPLICA_ID")
    assert replica_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # pod parley-N is replica parley-N
    port, start_port = int(env["PARLEY_PORT"]), int(env["PARLEY_START_PORT"])
    assert {p["containerPort"] for p in container["ports"]} == {port, start_port}
    # health checks are the server's gRPC health service on its port
    assert container["readinessProbe"]["grpc"]["port"] == port
    assert container["livenessProbe"]["grpc"]["port"] == port
    assert pod["terminationGracePeriodSeconds"] > float(env["PARLEY_DRAIN_TIMEOUT"])

    names = by_kind_name[("Service", sts["spec"]["serviceName"])]["spec"]
    ready = by_kind_name[("Service", "parley-ready")]["spec"]
    assert names["clusterIP"] == ready["clusterIP"] == "None"  # headless: DNS names the pods themselves
    assert names["publishNotReadyAddresses"] is True  # a draining pod keeps its name: its sessions still reach it
    assert not ready.get("publishNotReadyAddresses", False)  # only pods that take new sessions
    for service in (names, ready):
        assert service["selector"] == sts["spec"]["selector"]["matchLabels"]
        assert {p["port"] for p in service["ports"]} == {port, start_port}

    expected = NginxSettings(
        listen="0.0.0.0:50051", user="www-data",
        fleet=Discovered(
            f"{sts['metadata']['name']}-[0-9]+",
            f"{{replica}}.{sts['spec']['serviceName']}.{namespace}.svc.cluster.local",
            f"parley-ready.{namespace}.svc.cluster.local", port, start_port, K8S_DNS,
        ),
    )
    generated = kustomization["configMapGenerator"][0]
    assert generated["files"] == ["nginx.conf"]
    assert (folder / "nginx.conf").read_text() == render(expected)

    proxy = by_kind_name[("Deployment", "parley-proxy")]["spec"]["template"]["spec"]
    volume = next(v for v in proxy["volumes"] if v["configMap"]["name"] == generated["name"])
    mount = next(m for m in proxy["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert f"{mount['mountPath']}/nginx.conf" == CONFIG_IN_IMAGE
    listen_port = int(expected.listen.rsplit(":", 1)[1])
    assert {p["containerPort"] for p in proxy["containers"][0]["ports"]} == {listen_port}
    assert by_kind_name[("Service", "parley-proxy")]["spec"]["ports"][0]["port"] == listen_port


def test_ci_installs_nginx() -> None:
    assert "apt-get install -y -q --no-install-recommends nginx" in (ROOT / ".ci" / "run").read_text()
