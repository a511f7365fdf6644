"""Where webhook deliveries may connect: public internet addresses only, checked as they connect.

A webhook URL is chosen by whoever holds an admin key, and the router posts to it from inside
the deployment: without a guard, `http://169.254.169.254/...` (a cloud's instance metadata),
`http://localhost:5432` or a Kubernetes service name would make the router a door into its own
network. Checking the URL when it is registered is not enough: a name can resolve to a public
address then and to a private one at delivery (DNS rebinding). So the check is made where the
connection is opened: the host is resolved once, every address it resolves to that is not
globally routable is dropped, and the connection goes to a remaining address itself (TLS still
names and verifies the URL's host). Redirects are never followed (see worker.py).

`OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` lifts the guard, for receivers on a laptop or
inside the same network. httpx has no such option and no maintained package adds one to it, so
this is an httpcore network backend of our own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 prefixes that carry an IPv4 address a router may translate to: judge the IPv4 one.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, shared (CGNAT), reserved,
    documentation, multicast, or an IPv6 form of one of these."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def private_host(url: str) -> str | None:
    """Why a URL names a private destination outright (an address or `localhost`), if it does:
    refused when it is registered, so the mistake shows at once rather than as failed
    deliveries. A name is judged only when a delivery resolves it."""
    host = (httpx.URL(url).host or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if is_public(address) else f"{host} is not a public address"


class BlockedDestination(httpcore.ConnectError):
    """The host resolves to no address a delivery may reach."""


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the destination checked after resolution."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        async with asyncio.timeout(timeout):
            resolved = await _resolve(host, port)
        allowed = [address for address in resolved if is_public(address)]
        if not allowed:
            shown = ", ".join(sorted({str(a) for a in resolved})) or "nothing"
            raise BlockedDestination(
                f"{host} resolves to {shown}, not a public address; deliveries to private "
                "networks are off (OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_NETWORKS)"
            )
        error: httpcore.ConnectError | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:  # the next address, as a resolver would
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("a webhook is delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # no IPv6 zone
        if address not in addresses:
            addresses.append(address)
    return addresses


class PublicOnlyTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, its connection pool built on the public-only backend.

    httpx takes no network backend, so the pool it builds is replaced by the same pool with
    ours (the attribute httpx's own transport uses).
    """

    def __init__(self, max_connections: int = 100) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=PublicOnlyBackend(),
        )
