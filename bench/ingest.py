"""Ingest throughput against a bare FastAPI baseline, and end-to-end latency to an agent's offer.

1. Throughput. A bare FastAPI app that only validates the contact JSON (bench/baseline_app.py)
   and the gateway's `POST /v1/contacts` over Kafka (acks=all, Tansu) are served by the same
   uvicorn command line (one worker, log level WARNING, no access log) and driven by the same
   load generator, in a process of its own, at the same concurrency: a warm-up, then a fixed
   number of requests with distinct external ids. It prints requests/s, p50 and p99 of each and
   the ratio gateway/baseline (target: at least 0.7). Every answer must be 202; errors are
   counted and make the run fail.
2. End to end. A fresh broker, the gateway, two classifier workers and the router as separate
   processes over Kafka and SQLite; agents with every skill long-poll their offers and accept
   them. Contacts are posted at a paced rate; per contact it measures the time from sending the
   POST to its conversation's offer appearing in a long-poll answer, and prints p50 and p99.

Everything runs on 127.0.0.1, in a temporary directory, and is stopped at the end (also on
error or Ctrl-C). Run: .venv/bin/python bench/ingest.py [--quick] [--requests N]
[--concurrency C] [--client raw|httpx] [--rounds R] [--rate R --seconds S] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import free_port, percentile  # noqa: E402

from omniroute.services.cluster import (  # noqa: E402
    ProcessGroup,
    broker_binary,
    omniroute_command,
    start_stages,
    wait_port,
    wait_ready,
)

TARGET_RATIO = 0.7
HOST = "127.0.0.1"
PATH = "/v1/contacts"
SKILLS = ("general", "billing", "technical", "supervisor", "vip", "triage")
DEFAULTS = {"requests": 5000, "concurrency": 32, "warmup": 1000, "rounds": 2}
ACCEPTS_IN_FLIGHT = 4  # per end-to-end desktop
QUICK = {"requests": 1000, "concurrency": 32, "warmup": 300, "rounds": 1}


def contact_body(prefix: str, index: int) -> bytes:
    """A typical chat contact (about 400 bytes); distinct per prefix and index."""
    ident = f"{prefix}-{index}"
    return json.dumps(
        {
            "channel": "chat",
            "external_id": ident,
            "conversation_key": ident,
            "customer": {"name": f"Customer {index}", "email": f"customer{index}@example.com"},
            "subject": f"Pedido {index}",
            "text": (
                f"Hola, os escribo porque el pedido {index} que hice la semana pasada todavía "
                "no ha llegado y el número de seguimiento no se mueve. ¿Podéis ayudarme?"
            ),
            "metadata": {"source": "bench"},
        },
        ensure_ascii=False,
    ).encode()


def _run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """uvloop when available (it is what uvicorn uses too), else the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


# --- The load generator (runs in a process of its own) -----------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    sample_error: str = ""

    def record(self, status: int | str, latency: float, body: bytes | str = b"") -> None:
        self.statuses[str(status)] += 1
        if status == 202:
            self.latencies.append(latency)
        elif not self.sample_error:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            self.sample_error = f"{status}: {text[:300]}"


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection, one request at a time (responses have a length)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None:
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._fail(ConnectionError("response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        waiter, self._waiter = self._waiter, None
        waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("connection closed"))

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self._transport is not None
        assert self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return self._waiter


class RawPool:
    """Keep-alive HTTP/1.1 connections for POSTing JSON, one more whenever none is free."""

    def __init__(self, port: int, key: str, size: int) -> None:
        self._port, self._size = port, size
        self._free: asyncio.Queue[_Connection] = asyncio.Queue()
        self._connections: list[_Connection] = []
        self._headers = (
            f" HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._prefix = b"POST " + PATH.encode() + self._headers

    async def __aenter__(self) -> RawPool:
        loop = asyncio.get_running_loop()
        for _ in range(self._size):
            _, connection = await loop.create_connection(_Connection, HOST, self._port)
            self._connections.append(connection)
            self._free.put_nowait(connection)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for connection in self._connections:
            if connection._transport is not None:
                connection._transport.close()

    async def post(self, body: bytes, path: str | None = None) -> tuple[int, bytes]:
        # Open loop: a POST never waits for another one to finish; with none free, connect.
        connection = None if self._free.empty() else self._free.get_nowait()
        if connection is None or connection.closed:  # uvicorn closes connections idle for 5 s
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(_Connection, HOST, self._port)
            self._connections.append(connection)
        try:
            prefix = self._prefix if path is None else b"POST " + path.encode() + self._headers
            return await connection.request(prefix + str(len(body)).encode() + b"\r\n\r\n" + body)
        finally:
            self._free.put_nowait(connection)


async def _drive_raw(
    port: int, key: str, warmup: list[bytes], measured: list[bytes], concurrency: int
) -> tuple[Tally, float]:
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(_Connection, HOST, port))[1] for _ in range(concurrency)
    ]
    prefix = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()

    def requests(bodies: list[bytes]) -> Iterator[bytes]:
        for body in bodies:
            yield prefix + str(len(body)).encode() + b"\r\n\r\n" + body

    async def worker(connection: _Connection, items: Iterator[bytes], tally: Tally) -> None:
        clock = time.perf_counter
        for data in items:
            started = clock()
            try:
                status, body = await connection.request(data)
            except (OSError, ConnectionError) as exc:
                tally.record(type(exc).__name__, 0.0, str(exc))
                return  # this connection is gone; the others take the rest
            tally.record(status, clock() - started, body)

    warm = Tally()
    shared = requests(warmup)
    await asyncio.gather(*(worker(c, shared, warm) for c in connections))
    tally = Tally()
    tally.statuses.update({f"warm-up {k}": v for k, v in warm.statuses.items() if k != "202"})
    tally.sample_error = warm.sample_error
    # Pre-built requests: the timed loop does no encoding.
    prebuilt = list(requests(measured))
    shared = iter(prebuilt)
    started = time.perf_counter()
    await asyncio.gather(*(worker(c, shared, tally) for c in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        if connection._transport is not None:
            connection._transport.close()
    return tally, elapsed


async def _drive_httpx(
    port: int, key: str, warmup: list[bytes], measured: list[bytes], concurrency: int
) -> tuple[Tally, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", headers=headers, limits=limits, timeout=60
    ) as client:

        async def worker(items: Iterator[bytes], tally: Tally) -> None:
            clock = time.perf_counter
            for body in items:
                started = clock()
                try:
                    response = await client.post(PATH, content=body)
                except httpx.TransportError as exc:
                    tally.record(type(exc).__name__, 0.0, str(exc))
                    continue
                tally.record(response.status_code, clock() - started, response.content)

        warm = Tally()
        shared = iter(warmup)
        await asyncio.gather(*(worker(shared, warm) for _ in range(concurrency)))
        tally = Tally()
        tally.statuses.update({f"warm-up {k}": v for k, v in warm.statuses.items() if k != "202"})
        tally.sample_error = warm.sample_error
        shared = iter(measured)
        started = time.perf_counter()
        await asyncio.gather(*(worker(shared, tally) for _ in range(concurrency)))
        return tally, time.perf_counter() - started


def loadgen_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ingest.py loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--client", choices=("raw", "httpx"), required=True)
    args = parser.parse_args(argv)
    warmup = [contact_body(f"{args.prefix}-warm", i) for i in range(args.warmup)]
    measured = [contact_body(args.prefix, i) for i in range(args.requests)]
    drive = _drive_raw if args.client == "raw" else _drive_httpx
    cpu = time.process_time()
    tally, elapsed = _run_async(drive(args.port, args.key, warmup, measured, args.concurrency))
    json.dump(
        {
            "elapsed": elapsed,
            "latencies": tally.latencies,
            "statuses": dict(tally.statuses),
            "sample_error": tally.sample_error,
            "loadgen_cpu_seconds": time.process_time() - cpu,
        },
        sys.stdout,
    )


# --- The end-to-end client (runs in a process of its own) --------------------------------------


async def _e2e(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    cpu_started = time.process_time()
    admin = {"Authorization": f"Bearer {args.admin_key}"}
    agents: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=args.router, headers=admin, timeout=30) as router:
        for index in range(args.agents):
            created = await router.post(
                "/v1/agents",
                json={
                    "name": f"Bench agent {index}",
                    "status": "available",
                    "skills": dict.fromkeys(SKILLS, 3),
                    "capacity": {"default": 1_000_000},
                },
            )
            created.raise_for_status()
            agent_id = created.json()["id"]
            key = await router.post("/v1/keys", json={"role": "agent", "agent_id": agent_id})
            key.raise_for_status()
            agents.append((agent_id, key.json()["key"]))
        ingest = await router.post("/v1/keys", json={"role": "ingest"})
        ingest.raise_for_status()
        ingest_key = ingest.json()["key"]

    seen: dict[str, float] = {}  # conversation id -> when its offer was first in a poll answer
    stop = asyncio.Event()
    progress = asyncio.Event()  # set whenever an offer was seen
    poll_answers = 0

    async def desktop(agent_id: str, key: str) -> None:
        nonlocal poll_answers
        offered: set[str] = set()
        accepting: set[asyncio.Task[tuple[int, bytes]]] = set()
        auth = {"Authorization": f"Bearer {key}"}
        # Accepts go through connections of their own, so a burst of them never queues the poll
        # behind them, and through the raw client: with httpx the bench's own CPU became the
        # bottleneck of the figure it measures.
        router_port = int(args.router.rsplit(":", 1)[1])
        clicking = asyncio.Semaphore(ACCEPTS_IN_FLIGHT)

        async def accept(offer_id: str) -> tuple[int, bytes]:
            async with clicking:
                return await acceptor.post(b"", path=f"/v1/offers/{offer_id}/accept")

        async with (
            httpx.AsyncClient(base_url=args.router, headers=auth, timeout=60) as client,
            RawPool(router_port, key, 2) as acceptor,
        ):
            try:
                newest: dict[str, str] = {}  # the newest offer seen: wait for newer ones only
                while not stop.is_set():
                    try:
                        response = await client.get(
                            f"/v1/agents/{agent_id}/offers",
                            params={"wait": 10, **({"after": newest["id"]} if newest else {})},
                        )
                    except httpx.TransportError:
                        # A kept-alive connection the server closed as it was reused: a
                        # desktop simply polls again.
                        continue
                    now = time.monotonic()
                    response.raise_for_status()
                    poll_answers += 1
                    new = [o for o in response.json()["offers"] if o["id"] not in offered]
                    for offer in new:
                        offered.add(offer["id"])
                        seen.setdefault(offer["conversation_id"], now)
                        progress.set()
                        if not newest or offer["created_at"] > newest["created_at"]:
                            newest = offer
                    # Accept what was offered, as an agent would, while the desktop keeps
                    # polling: a desktop shows new offers whatever the agent is clicking.
                    accepting.difference_update([t for t in accepting if t.done()])
                    accepting.update(asyncio.create_task(accept(offer["id"])) for offer in new)
            finally:
                for task in accepting:
                    task.cancel()
                await asyncio.gather(*accepting, return_exceptions=True)

    sent: dict[str, float] = {}  # conversation id -> when its POST was sent
    statuses: collections.Counter[str] = collections.Counter()
    sample_error = ""
    post_latencies: list[float] = []

    # The raw client, not httpx: paced at 200/s, httpx's own queueing made the POSTs (and so
    # the end-to-end figure) seconds slow while the gateway was idle.
    async with RawPool(args.gateway_port, ingest_key, args.connections) as gateway:

        async def post(body: bytes) -> str | None:
            nonlocal sample_error
            started = time.monotonic()
            try:
                status, answer = await gateway.post(body)
            except (OSError, ConnectionError) as exc:
                statuses[type(exc).__name__] += 1
                return None
            statuses[str(status)] += 1
            if status != 202:
                sample_error = sample_error or f"{status}: {answer[:300].decode(errors='replace')}"
                return None
            conversation: str = json.loads(answer)["conversation_id"]
            sent[conversation] = started
            post_latencies.append(time.monotonic() - started)
            return conversation

        async def paced(prefix: str, count: int) -> tuple[list[str], float]:
            tasks = []
            start = time.monotonic() + 0.2
            for index in range(count):
                delay = start + index / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post(contact_body(prefix, index))))
            span = time.monotonic() - start
            return [c for c in await asyncio.gather(*tasks) if c is not None], span

        async def offered(conversations: list[str], within: float) -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    while any(c not in seen for c in conversations):
                        progress.clear()
                        await progress.wait()

        desktops = [asyncio.create_task(desktop(a, k)) for a, k in agents]
        broker_acks: list[float] = []
        prober = asyncio.create_task(_probe_broker(args.bootstrap, stop, broker_acks))
        run = uuid.uuid4().hex[:8]
        try:
            # Warm-up: a few contacts through every stage, not counted.
            warm, _ = await paced(f"e2e-warm-{run}", args.warmup)
            await offered(warm, 60)
            warm_matched = sum(c in seen for c in warm)
            statuses.clear()
            post_latencies.clear()
            total = int(args.rate * args.seconds)
            conversations, span = await paced(f"e2e-{run}", total)
            await offered(conversations, args.drain)
        finally:
            stop.set()
            for task in desktops:
                task.cancel()
            results = await asyncio.gather(*desktops, return_exceptions=True)
            await prober
    publish = await _publish_seconds(f"http://{HOST}:{args.gateway_port}/metrics")
    desktop_errors = [
        repr(r) for r in results if isinstance(r, BaseException) and not _cancelled(r)
    ]
    latencies = [seen[c] - sent[c] for c in conversations if c in seen]
    offered_at = [seen[c] for c in conversations if c in seen]
    first_sent = min((sent[c] for c in conversations), default=0.0)
    offer_span = max(offered_at, default=first_sent) - first_sent
    return {
        "posted": total,
        "accepted": len(conversations),
        "post_span": span,
        "statuses": dict(statuses),
        "sample_error": sample_error,
        "matched": len(latencies),
        "latencies": latencies,
        "post_p50": percentile(post_latencies, 0.5),
        "post_p99": percentile(post_latencies, 0.99),
        "warmup": args.warmup,
        "warmup_matched": warm_matched,
        "poll_answers": poll_answers,
        "desktop_errors": desktop_errors,
        "client_cpu": time.process_time() - cpu_started,
        "publish_mean": publish,
        "drain": args.drain,
        "broker_ack_p50": percentile(broker_acks, 0.5),
        "broker_ack_p99": percentile(broker_acks, 0.99),
        "offer_rate": len(offered_at) / offer_span if offer_span > 0 else 0.0,
    }


async def _probe_broker(bootstrap: str, stop: asyncio.Event, acks: list[float]) -> None:
    """Ten acks=all sends a second to a topic of its own: the broker's latency, apart from
    the gateway's."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        while not stop.is_set():
            started = time.monotonic()
            await producer.send_and_wait("bench.probe", b"x" * 400, key=b"probe")
            acks.append(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await producer.stop()


RECEIVED = "omniroute_contacts_received_total"


async def _metric_totals(url: str, *names: str) -> list[float]:
    """The sum of each metric's samples over its labels, from one scrape."""
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        lines = (await client.get(url)).text.splitlines()
    return [
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith((f"{name}{{", f"{name} "))
        )
        for name in names
    ]


async def _publish_seconds(url: str) -> float:
    """Mean time the gateway waited for Kafka per contact, from its Prometheus metrics."""
    total, count = await _metric_totals(
        url, "omniroute_ingest_seconds_sum", "omniroute_ingest_seconds_count"
    )
    return total / count if count else float("nan")


# Each stage's own latency histogram, so a slow end-to-end figure says where the time went:
# the gateway's acks, a classification, the router's store, and receipt-to-offer (the rest,
# up to the offer visible in a long-poll, is the poll's).
STAGE_HISTOGRAMS = {
    "gateway ingest": ("gateway", "omniroute_ingest_seconds"),
    "on the bus to a classifier": ("classifier", "omniroute_pipeline_lag_seconds"),
    "classify": ("classifier", "omniroute_classify_seconds"),
    "on the bus to the router": ("router", "omniroute_pipeline_lag_seconds"),
    "router store": ("router", "omniroute_route_seconds"),
    "receipt to offer": ("router", "omniroute_time_to_offer_seconds"),
    "router's event-loop lag": ("router", "omniroute_event_loop_lag_seconds"),
}


async def _stage_latencies(ready_urls: dict[str, str]) -> dict[str, tuple[str, str, str]]:
    """Mean, p50 and p99 of each stage's histogram, summed over its processes (the quantiles
    as bucket bounds)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[str, collections.Counter[float]] = collections.defaultdict(collections.Counter)
    sums: collections.Counter[str] = collections.Counter()
    async with httpx.AsyncClient(timeout=10) as client:
        for process, url in ready_urls.items():
            text = (await client.get(url.replace("/readyz", "/metrics"))).text
            for family in text_string_to_metric_families(text):
                for stage, (prefix, name) in STAGE_HISTOGRAMS.items():
                    if not process.startswith(prefix) or family.name != name:
                        continue
                    for sample in family.samples:
                        if sample.name.endswith("_bucket"):
                            buckets[stage][float(sample.labels["le"])] += sample.value
                        elif sample.name.endswith("_sum"):
                            sums[stage] += sample.value
    results = {}
    for stage in STAGE_HISTOGRAMS:
        count = buckets[stage][math.inf]
        mean = _ms(sums[stage] / count) if count else "n/a"
        p50, p99 = (_bucket_quantile(buckets[stage], q) for q in (0.5, 0.99))
        results[stage] = (mean, p50, p99)
    return results


def _bucket_quantile(cumulative: collections.Counter[float], q: float) -> str:
    """The upper bound of the bucket holding the q-quantile ("<= 50 ms")."""
    bounds = sorted(cumulative)
    total = cumulative[math.inf] if bounds else 0
    if not total:
        return "n/a"
    bound = next(b for b in bounds if cumulative[b] >= q * total)
    return "> 30 s" if math.isinf(bound) else f"<= {_ms(bound)}"


def _cancelled(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError)


def e2e_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ingest.py e2e")
    parser.add_argument("--gateway-port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--router", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--admin-key", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--drain", type=float, default=120.0)
    json.dump(_run_async(_e2e(parser.parse_args(argv))), sys.stdout)


# --- The orchestrator --------------------------------------------------------------------------


def uvicorn_command(target: str, port: int, *, factory: bool = False) -> list[str]:
    """The one uvicorn command line both apps of the throughput bench are served with."""
    command = [sys.executable, "-m", "uvicorn", target, "--app-dir", str(BENCH_DIR)]
    command += ["--host", HOST, "--port", str(port), "--workers", "1"]
    command += ["--log-level", "warning", "--no-access-log"]
    return command + (["--factory"] if factory else [])


def start_broker(group: ProcessGroup) -> str:
    port = free_port()
    listener = f"tcp://{HOST}:{port}"
    command = [broker_binary(), "broker", "--listener-url", listener]
    group.start("tansu", [*command, "--advertised-listener-url", listener], {})
    wait_port(port)
    return f"kafka://{HOST}:{port}"


def run_child(mode: str, options: dict[str, object], timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), mode]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@dataclass
class Measured:
    name: str
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    sample_error: str = ""
    loadgen_cpu: float = 0.0

    def add(self, result: dict[str, Any]) -> None:
        self.requests += sum(v for k, v in result["statuses"].items() if not k.startswith("warm"))
        self.seconds += result["elapsed"]
        self.latencies += result["latencies"]
        self.statuses.update(result["statuses"])
        self.sample_error = self.sample_error or result["sample_error"]
        self.loadgen_cpu += result["loadgen_cpu_seconds"]

    @property
    def errors(self) -> int:
        return sum(v for k, v in self.statuses.items() if not k.endswith("202"))

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self, label: str) -> str:
        p50, p99 = percentile(self.latencies, 0.5), percentile(self.latencies, 0.99)
        return (
            f"  {label:<44} {self.rps:8.0f} req/s   p50 {p50 * 1000:6.1f} ms   "
            f"p99 {p99 * 1000:6.1f} ms   errors {self.errors}"
        )


def _server_cpu(pid: int) -> float:
    """User+system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_of(group: ProcessGroup) -> dict[str, float]:
    return {name: _server_cpu(process.pid) for name, process in group.processes.items()}


def throughput(args: argparse.Namespace, group: ProcessGroup, env: dict[str, str]) -> bool:
    ingest_key = subprocess.run(
        omniroute_command("keys", "create", "--role", "ingest", "--name", "bench"),
        env={**os.environ, **env},
        capture_output=True,
        check=True,
        text=True,
    ).stdout.strip()
    ports = {"baseline": free_port(), "gateway": free_port()}
    group.start("baseline", uvicorn_command("baseline_app:app", ports["baseline"]), env)
    group.start(
        "gateway", uvicorn_command("_common:gateway_app", ports["gateway"], factory=True), env
    )

    async def ready() -> None:
        await asyncio.gather(
            wait_ready(f"http://{HOST}:{ports['baseline']}/healthz"),
            wait_ready(f"http://{HOST}:{ports['gateway']}/readyz"),
        )

    asyncio.run(ready())
    keys = {"baseline": ingest_key, "gateway": ingest_key}  # the baseline ignores it
    measured = {name: Measured(name) for name in ports}
    server_cpu = dict.fromkeys(ports, 0.0)
    server_wall = dict.fromkeys(ports, 0.0)
    run = uuid.uuid4().hex[:8]
    for round_ in range(args.rounds):
        # Alternate the order so a drift in the machine's load does not favour one side.
        order = ("baseline", "gateway") if round_ % 2 == 0 else ("gateway", "baseline")
        for name in order:
            pid = group.processes[name].pid
            before, wall = _server_cpu(pid), time.monotonic()
            result = run_child(
                "loadgen",
                {
                    "port": ports[name],
                    "key": keys[name],
                    "prefix": f"{name}-{run}-r{round_}",
                    "requests": args.requests,
                    "warmup": args.warmup,
                    "concurrency": args.concurrency,
                    "client": args.client,
                },
                timeout=600,
            )
            server_cpu[name] += _server_cpu(pid) - before
            server_wall[name] += time.monotonic() - wall
            measured[name].add(result)
            print(
                f"    round {round_ + 1} {name:<8} {result_rps(result):8.0f} req/s",
                flush=True,
            )
    # The gateway counts a contact once the broker has acknowledged it: every timed and warm-up
    # request must show there, or the 202s were not what they claim.
    [published] = asyncio.run(_metric_totals(f"http://{HOST}:{ports['gateway']}/metrics", RECEIVED))
    group.stop("baseline")
    group.stop("gateway")

    base, gate = measured["baseline"], measured["gateway"]
    ratio = gate.rps / base.rps if base.rps else 0.0
    print(
        f"Ingest throughput: {args.requests} requests x {args.rounds} round(s) per app, "
        f"concurrency {args.concurrency}, warm-up {args.warmup}, client {args.client}, "
        f"{os.cpu_count()} CPUs"
    )
    print(base.line("baseline (bare FastAPI, validation only)"))
    print(gate.line("gateway POST /v1/contacts (Kafka, acks=all)"))
    for item in (base, gate):
        print(
            f"    {item.name}: server CPU {server_cpu[item.name] / server_wall[item.name]:.0%} "
            f"of a core, load generator CPU {item.loadgen_cpu / server_wall[item.name]:.0%} "
            "(both over the whole load generator run, warm-up included)"
        )
    served = args.rounds * (args.requests + args.warmup) - gate.errors
    cost = {name: server_cpu[name] / served for name in ports}
    verdict = "meets" if ratio >= TARGET_RATIO else "DOES NOT meet"
    print(f"  ratio gateway/baseline: {ratio:.2f} ({verdict} the target of {TARGET_RATIO})")
    print(
        f"  server CPU per request: baseline {cost['baseline'] * 1e6:.0f} us, gateway "
        f"{cost['gateway'] * 1e6:.0f} us; ratio baseline/gateway "
        f"{cost['baseline'] / cost['gateway']:.2f} (the throughput ratio if each server had a "
        "core to itself; less sensitive to a busy machine)"
    )
    print(f"  the gateway's {RECEIVED}: {published:.0f} (202 answers, warm-up included: {served})")
    ok = published == served
    if not ok:
        print("  INVALID: the gateway did not publish every contact it answered")
    for item in (base, gate):
        if item.errors:
            ok = False
            print(f"  INVALID: {item.name} had {item.errors} errors {dict(item.statuses)}")
            print(f"    first: {item.sample_error}")
    return ok


def result_rps(result: dict[str, Any]) -> float:
    count = sum(v for k, v in result["statuses"].items() if not k.startswith("warm"))
    return count / result["elapsed"] if result["elapsed"] else 0.0


def end_to_end(
    args: argparse.Namespace, group: ProcessGroup, env: dict[str, str], admin_key: str
) -> bool:
    gateway_port, router_port = free_port(), free_port()
    stage_env = {
        **env,
        "OMNIROUTE_GATEWAY_PORT": str(gateway_port),
        "OMNIROUTE_ROUTER_PORT": str(router_port),
        "OMNIROUTE_CLASSIFIER_PORTS": f"{free_port()},{free_port()}",
    }
    urls = start_stages(group, stage_env, classifiers=2)

    async def ready() -> None:
        await asyncio.gather(*(wait_ready(url, within=120) for url in urls.values()))

    asyncio.run(ready())
    cpu_before, wall = _cpu_of(group), time.monotonic()
    result = run_child(
        "e2e",
        {
            "gateway_port": gateway_port,
            "router": f"http://{HOST}:{router_port}",
            "bootstrap": env["OMNIROUTE_BUS"].removeprefix("kafka://"),
            "admin_key": admin_key,
            "rate": args.rate,
            "seconds": args.seconds,
            "agents": args.agents,
        },
        timeout=args.seconds + 300,
    )
    wall = time.monotonic() - wall
    cpu = {name: (used - cpu_before.get(name, 0.0)) / wall for name, used in _cpu_of(group).items()}
    stages = asyncio.run(_stage_latencies(urls))
    # A contact with no offer by the end of the drain counts as slower than every other one.
    unmatched = result["accepted"] - result["matched"]
    latencies = result["latencies"] + [float("inf")] * unmatched
    errors = sum(v for k, v in result["statuses"].items() if k != "202")
    print(
        f"End to end (gateway -> Kafka -> 2 classifiers -> router -> long-poll), "
        f"{result['posted']} contacts at {args.rate:.0f}/s "
        f"(posted over {result['post_span']:.1f} s), {args.agents} agent desktops:"
    )
    print(
        f"  POST to offer visible: p50 {_ms(percentile(latencies, 0.5))}   "
        f"p99 {_ms(percentile(latencies, 0.99))}   max {_ms(max(latencies, default=math.nan))}"
    )
    print(
        f"  matched {result['matched']}/{result['accepted']} accepted contacts "
        f"({result['posted']} posted, errors {errors}); "
        f"POST itself p50 {result['post_p50'] * 1000:.1f} ms p99 "
        f"{result['post_p99'] * 1000:.1f} ms; {result['poll_answers']} long-poll answers"
    )
    print(
        f"  of which the gateway waited for the broker's acks {result['publish_mean'] * 1000:.1f} "
        "ms per contact on average (omniroute_ingest_seconds); an idle producer's acks=all "
        f"sends meanwhile: p50 {result['broker_ack_p50'] * 1000:.1f} ms, "
        f"p99 {result['broker_ack_p99'] * 1000:.1f} ms"
    )
    print(
        f"  offers appeared at {result['offer_rate']:.0f}/s on average "
        f"(contacts were posted at {result['accepted'] / max(result['post_span'], 1e-9):.0f}/s)"
    )
    print(
        "  stages, from their Prometheus histograms (warm-up included; bucket bounds): "
        + "; ".join(
            f"{name} mean {mean} p50 {p50} p99 {p99}" for name, (mean, p50, p99) in stages.items()
        )
    )
    cpu["client"] = result["client_cpu"] / wall
    print(
        f"  CPU over the run ({wall:.0f} s), in cores: "
        + ", ".join(f"{name} {share:.2f}" for name, share in sorted(cpu.items()))
    )
    ok = errors == 0
    if errors:
        print(f"  INVALID: {result['statuses']} first: {result['sample_error']}")
    if result["desktop_errors"]:
        ok = False
        print(f"  desktop errors: {result['desktop_errors'][:3]}")
    if unmatched:
        print(
            f"  {unmatched} contacts had no offer {result['drain']:.0f} s after the last POST "
            "(counted as slower than every other, shown as 'no offer')"
        )
    return ok


def _ms(seconds: float) -> str:
    return "no offer" if math.isinf(seconds) else f"{seconds * 1000:.0f} ms"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--requests", type=int, help="timed requests per app and round")
    parser.add_argument("--concurrency", type=int, help="requests in flight")
    parser.add_argument("--warmup", type=int, help="untimed requests before each timed run")
    parser.add_argument("--rounds", type=int, help="baseline/gateway alternations")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--rate", type=float, default=200.0, help="end-to-end contacts/s")
    parser.add_argument("--seconds", type=float, help="end-to-end posting time")
    parser.add_argument("--agents", type=int, default=4, help="end-to-end agent desktops")
    parser.add_argument(
        "--database-url",
        help="an empty database to use instead of a temporary SQLite file "
        "(e.g. postgresql://postgres@127.0.0.1:5432/bench); it is migrated, not dropped",
    )
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 10.0

    # SIGTERM (e.g. from make being stopped) unwinds through the finally below too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    directory = Path(tempfile.mkdtemp(prefix="omniroute-bench-"))
    group = ProcessGroup(directory / "logs")
    admin_key = "omr_bench-" + secrets.token_urlsafe(24)
    ok = False
    try:
        env = {
            "OMNIROUTE_DATABASE_URL": args.database_url
            or f"sqlite:///{directory / 'omniroute.db'}",
            "OMNIROUTE_DATA_DIR": str(directory / "var"),
            "OMNIROUTE_ADMIN_KEY": admin_key,
            "OMNIROUTE_LOG_LEVEL": "WARNING",
            "OMNIROUTE_OFFER_TIMEOUT_SECONDS": "3600",
        }
        subprocess.run(
            omniroute_command("migrate"), env={**os.environ, **env}, check=True, capture_output=True
        )
        ok = True
        if not args.skip_throughput:
            env["OMNIROUTE_BUS"] = start_broker(group)
            ok = throughput(args, group, env) and ok
            group.stop("tansu")
        if not args.skip_e2e:
            env["OMNIROUTE_BUS"] = start_broker(group)  # fresh: no backlog from the above
            ok = end_to_end(args, group, env, admin_key) and ok
    except BaseException:
        ok = False
        raise
    finally:
        group.stop_all()
        if not ok:
            for log in sorted((directory / "logs").glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-10:]
                sys.stderr.write(f"--- {log.name}\n" + "\n".join(tail) + "\n")
        if args.keep:
            print(f"(kept {directory})")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("loadgen", "e2e"):
        (loadgen_main if sys.argv[1] == "loadgen" else e2e_main)(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
