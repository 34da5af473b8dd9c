"""Download URLs concurrently with the limits a crawler in the wild needs.

One `Fetcher` per shard worker: an aiohttp session whose connector caps total
and per-host concurrency and whose resolver refuses private addresses. Each
download has one deadline covering redirects and retries (not only a socket
read timeout), a body-size cap enforced while streaming, a redirect limit,
retries with backoff on timeouts, 429 and 5xx (Retry-After honoured), and
the X-Robots-Tag opt-out checked before the body is read. Images and videos
share it.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from importlib.metadata import version

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from clipline.pipelines.config import FetchConfig

log = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    url: str
    body: bytes | None  # None when the download failed
    error: str | None  # specific reason, for the status table
    http_status: int | None = None
    content_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.body is not None


@dataclass(frozen=True)
class _Attempt:
    result: FetchResult
    retryable: bool = False
    retry_after_s: float | None = None


class RefusedAddress(OSError):
    """A host resolved to an address the crawler must not reach."""


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


# IPv6 prefixes that carry an IPv4 address to a translator or tunnel, which then reaches that IPv4 address:
# through them a public-looking IPv6 address can reach 10.0.0.1 (Python 3.11 calls 6to4 and NAT64 global).
TRANSLATED: dict[str, tuple[ipaddress.IPv6Network, ...]] = {
    "6to4": (ipaddress.IPv6Network("2002::/16"),),
    "teredo": (ipaddress.IPv6Network("2001::/32"),),
    "nat64": (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48")),
}


def refused_reason(address: str, allowed: Networks = ()) -> str | None:
    """The kind of address that makes `address` off limits (loopback, private, 6to4, ...), or None.

    An IPv4-mapped address (::ffff:a.b.c.d) is judged by its IPv4 address; 6to4, Teredo and NAT64 addresses
    are refused whatever they embed (a crawl of public hosts never needs a translator).
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allowed):
        return None
    for kind, networks in TRANSLATED.items():
        if any(ip in network for network in networks):
            return kind
    # Most specific first: 169.254.x is also "private" to Python, but link-local says more.
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-global"


class GuardedResolver(AbstractResolver):
    """DNS resolution that refuses hosts resolving to private or reserved addresses.

    The connection then uses the checked address, so a second lookup (DNS
    rebinding) cannot swap in a private one.
    """

    def __init__(self, allowed: Networks = ()) -> None:
        self._resolver = DefaultResolver()
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            reason = refused_reason(result["host"], self._allowed)
            if reason:
                raise RefusedAddress(f"private address refused: {host} resolves to {result['host']} ({reason})")
        return results

    async def close(self) -> None:
        await self._resolver.close()


def user_agent(token: str) -> str:
    return f"Mozilla/5.0 (compatible; {token}/{version('clipline')}; +https://github.com/clipline/clipline)"


def opted_out(headers, token: str, directives: list[str]) -> str | None:
    """The X-Robots-Tag directive that forbids storing this body, if any.

    A value is `directive, directive` for every crawler or `agent: directive, ...`
    for one; only ours (and the unnamed form) count.
    """
    disallowed = {d.lower() for d in directives}
    for value in headers.getall("X-Robots-Tag", []):
        agent, _, rest = value.rpartition(":") if ":" in value else ("", "", value)
        if agent and agent.strip().lower() != token.lower():
            continue
        for directive in rest.split(","):
            if directive.strip().lower() in disallowed:
                return directive.strip().lower()
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def fetch_urls(urls: list[str], config: FetchConfig) -> list[FetchResult]:
    """Download `urls` concurrently from synchronous code: one Fetcher, the config's limits and guard."""
    async def fetch_all() -> list[FetchResult]:
        async with Fetcher(config) as fetcher:
            return await asyncio.gather(*(fetcher.fetch(url) for url in urls))
    return asyncio.run(fetch_all())


class Fetcher:
    """Concurrent downloads for one worker. Use `async with Fetcher(config) as f: await f.fetch(url)`."""

    def __init__(self, config: FetchConfig):
        self.config = config
        self._allowed: Networks = tuple(ipaddress.ip_network(n, strict=False) for n in config.allowed_networks)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        connector = aiohttp.TCPConnector(
            limit=self.config.threads_per_worker, limit_per_host=self.config.per_host_concurrency,
            resolver=None if self.config.allow_private_networks else GuardedResolver(self._allowed),
            ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": user_agent(self.config.user_agent_token)},
            auto_decompress=True, timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(self, *exc) -> None:
        await self._session.close()

    async def fetch(self, url: str) -> FetchResult:
        """Download one URL within the total time limit; never raises for a bad URL."""
        deadline = time.monotonic() + self.config.timeout_s
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await self._with_retries(url, deadline)
        except TimeoutError:
            return FetchResult(url, None, f"timeout: not downloaded within {self.config.timeout_s:g} s")

    async def _with_retries(self, url: str, deadline: float) -> FetchResult:
        for attempt in range(self.config.retries + 1):
            outcome = await self._follow_redirects(url)
            if not outcome.retryable or attempt == self.config.retries:
                return outcome.result
            delay = outcome.retry_after_s
            if delay is None:
                delay = self.config.retry_backoff_s * 2**attempt
            if time.monotonic() + delay >= deadline:
                return FetchResult(url, None, f"{outcome.result.error} (retry in {delay:g} s would pass the "
                                   f"{self.config.timeout_s:g} s limit)", outcome.result.http_status)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _follow_redirects(self, url: str) -> _Attempt:
        current = url
        for _ in range(self.config.max_redirects + 1):
            refusal = self._refuse_url(current)
            if refusal:
                return _Attempt(FetchResult(url, None, refusal))
            try:
                attempt, location = await self._get(url, current)
            except RefusedAddress as e:
                return _Attempt(FetchResult(url, None, str(e)))
            except aiohttp.ClientConnectorDNSError as e:
                if isinstance(e.os_error, RefusedAddress):
                    return _Attempt(FetchResult(url, None, str(e.os_error)))
                return _Attempt(FetchResult(url, None, f"dns error: {e.os_error}"), retryable=True)
            except aiohttp.InvalidURL as e:
                return _Attempt(FetchResult(url, None, f"invalid url: {e}"))
            except (aiohttp.ClientError, OSError) as e:
                return _Attempt(FetchResult(url, None, f"connection error: {type(e).__name__}: {e}"), retryable=True)
            if location is None:
                return attempt
            current = str(URL(current).join(URL(location)))
        return _Attempt(FetchResult(url, None, f"too many redirects: more than {self.config.max_redirects}"))

    def _refuse_url(self, url: str) -> str | None:
        """Scheme and literal-address checks, made before every hop (redirects included)."""
        try:
            parsed = URL(url)
        except ValueError as e:
            return f"invalid url: {e}"
        if parsed.scheme not in ("http", "https"):
            return f"unsupported scheme: {parsed.scheme or 'none'!r} (only http and https)"
        if not parsed.host:
            return "invalid url: no host"
        if self.config.allow_private_networks:
            return None
        try:  # the resolver never sees literal addresses, so check them here
            reason = refused_reason(parsed.host.strip("[]"), self._allowed)
        except ValueError:
            return None  # a name: GuardedResolver checks what it resolves to
        return f"private address refused: {parsed.host} ({reason})" if reason else None

    async def _get(self, url: str, current: str) -> tuple[_Attempt | None, str | None]:
        """One request: (outcome, None) or (None, redirect location)."""
        async with self._session.get(current, allow_redirects=False) as response:
            status = response.status
            if status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    return _Attempt(FetchResult(url, None, f"http {status} redirect without Location", status)), None
                return None, location
            if status == 429 or status >= 500:
                return _Attempt(FetchResult(url, None, f"http error {status}", status), retryable=True,
                                retry_after_s=_retry_after(response.headers.get("Retry-After"))), None
            if status >= 400:
                return _Attempt(FetchResult(url, None, f"http error {status}", status)), None
            return await self._read_body(url, response), None

    async def _read_body(self, url: str, response: aiohttp.ClientResponse) -> _Attempt:
        config = self.config
        if config.respect_opt_out:
            directive = opted_out(response.headers, config.user_agent_token, config.opt_out_directives)
            if directive:
                return _Attempt(FetchResult(url, None, f"opted out: X-Robots-Tag {directive}", response.status))
        declared = response.content_length
        if declared is not None and declared > config.max_bytes:
            return _Attempt(FetchResult(url, None, f"too large: Content-Length {declared} bytes exceeds max_bytes "
                                        f"{config.max_bytes}", response.status))
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > config.max_bytes:
                return _Attempt(FetchResult(url, None, f"too large: body exceeds max_bytes {config.max_bytes}",
                                            response.status))
            chunks.append(chunk)
        if size == 0:
            return _Attempt(FetchResult(url, None, "empty body", response.status))
        return _Attempt(FetchResult(url, b"".join(chunks), None, response.status,
                                    response.headers.get("Content-Type")))
