"""The fetcher against a real local HTTP server: limits, retries, opt-out and the address guard."""

from __future__ import annotations

import asyncio
import time

import pytest

from clipline.pipelines.config import FetchConfig
from clipline.pipelines.crawl.fetcher import Fetcher, opted_out, refused_reason

LOOPBACK_ONLY = ["127.0.0.0/8"]  # the guard stays on for every other private range


def fetch(url: str, **overrides):
    config = FetchConfig(**{"allowed_networks": LOOPBACK_ONLY, "timeout_s": 5, "retry_backoff_s": 0.1, **overrides})

    async def go():
        async with Fetcher(config) as fetcher:
            return await fetcher.fetch(url)
    return asyncio.run(go())


def test_real_photo_downloads_with_a_user_agent_naming_clipline(http_server):
    result = fetch(http_server.url("/img/astronaut.jpg"))
    assert result.ok and result.body[:2] == b"\xff\xd8"
    assert "clipline/" in http_server.user_agent("/img/astronaut.jpg")


@pytest.mark.parametrize("path, error", [
    ("/404", "http error 404"),
    ("/huge.jpg", "too large: Content-Length 12582912 bytes exceeds max_bytes 10485760"),
    ("/huge-chunked.jpg", "too large: body exceeds max_bytes 10485760"),
    ("/redirect-loop", "too many redirects: more than 5"),
    ("/noai.jpg", "opted out: X-Robots-Tag noai"),
    ("/noimageai-ua.jpg", "opted out: X-Robots-Tag noimageai"),
])
def test_failures_get_specific_messages(http_server, path, error):
    result = fetch(http_server.url(path), max_bytes=10 * 2**20)
    assert not result.ok and result.error == error


def test_404_is_not_retried_but_500_is(http_server):
    before = http_server.hits("/404")
    fetch(http_server.url("/404"))
    assert http_server.hits("/404") - before == 1
    before = http_server.hits("/500")
    assert fetch(http_server.url("/500"), retries=2).error == "http error 500"
    assert http_server.hits("/500") - before == 3


def test_500_then_200_succeeds_on_retry(http_server):
    assert fetch(http_server.url("/flaky/coffee.jpg")).ok


def test_429_waits_for_retry_after(http_server):
    started = time.monotonic()
    assert fetch(http_server.url("/429/chelsea.jpg")).ok
    assert time.monotonic() - started >= 0.9  # Retry-After: 1


def test_retry_after_past_the_deadline_fails_without_waiting(http_server):
    started = time.monotonic()
    result = fetch(http_server.url("/429/rocket.jpg"), timeout_s=0.8)
    assert result.error.startswith("http error 429 (retry in 1 s would pass the 0.8 s limit)")
    assert time.monotonic() - started < 0.8


def test_total_time_limit_stops_a_body_that_keeps_trickling(http_server):
    started = time.monotonic()
    result = fetch(http_server.url("/slow.jpg"), timeout_s=2)
    assert result.error == "timeout: not downloaded within 2 s"
    assert time.monotonic() - started < 3


def test_redirect_chain_is_followed(http_server):
    assert fetch(http_server.url("/redirect/3/rocket.jpg")).ok
    assert fetch(http_server.url("/redirect/3/rocket.jpg"), max_redirects=2).error.startswith("too many redirects")


LOOPBACK_SERVER_ONLY = ["127.0.0.1/32"]  # the test servers; the trap on 127.0.0.2 stays refused


def test_redirect_to_a_refused_address_never_connects_to_it(http_server, trap):
    before = trap.connections
    result = fetch(http_server.url(f"/redirect-to?url={trap.url()}"), allowed_networks=LOOPBACK_SERVER_ONLY)
    assert result.error == "private address refused: 127.0.0.2 (loopback)"
    assert fetch(trap.url(), allowed_networks=LOOPBACK_SERVER_ONLY).error == result.error
    assert trap.connections == before


@pytest.mark.parametrize("target, error", [
    ("http://[::1]:1/x", "private address refused: ::1 (loopback)"),
    ("file:///etc/passwd", "unsupported scheme: 'file' (only http and https)"),
])
def test_redirect_to_a_forbidden_target_is_refused_before_connecting(http_server, target, error):
    assert fetch(http_server.url(f"/redirect-to?url={target}")).error == error


def test_guard_refuses_loopback_names_unless_allowed(http_server):
    port = http_server.base_url.rsplit(":", 1)[1]
    result = fetch(f"http://localhost:{port}/img/coffee.jpg", allowed_networks=[])
    assert result.error == "private address refused: localhost resolves to 127.0.0.1 (loopback)"
    assert fetch(f"http://localhost:{port}/img/coffee.jpg", allow_private_networks=True).ok


def test_opt_out_can_be_switched_off(http_server):
    assert fetch(http_server.url("/noai.jpg"), respect_opt_out=False).ok
    assert fetch(http_server.url("/robots-other-ua.jpg")).ok  # aimed at another crawler


def test_opt_out_parsing():
    from multidict import CIMultiDict
    headers = CIMultiDict([("X-Robots-Tag", "noarchive"), ("X-Robots-Tag", "CLIPLINE: NoImageIndex")])
    assert opted_out(headers, "clipline", ["noimageindex"]) == "noimageindex"
    assert opted_out(CIMultiDict([("X-Robots-Tag", "otherbot: noai")]), "clipline", ["noai"]) is None


@pytest.mark.parametrize("address, kind", [
    ("8.8.8.8", None), ("127.0.0.1", "loopback"), ("192.168.1.1", "private"), ("::ffff:10.1.2.3", "private"),
    ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
    ("::ffff:8.8.8.8", None), ("::ffff:169.254.169.254", "link-local"), ("2606:4700::1111", None),
    ("2002:a00:1::", "6to4"), ("2002:808:808::", "6to4"), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
    ("64:ff9b::a00:1", "nat64"), ("64:ff9b::808:808", "nat64"), ("64:ff9b:1::a9fe:a9fe", "nat64"),
])
def test_address_classes(address, kind):
    assert refused_reason(address) == kind

