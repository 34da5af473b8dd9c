"""A real local HTTP server for crawl tests, in the spirit of img2dataset's test server.

The crawler is tested against real sockets rather than mocks, so that timeouts, redirects,
body caps, header handling and connection reuse behave exactly as they would on the web.
Each route models one failure (or success) mode the crawler must handle (GET and HEAD):

    /img/<photo>.jpg            200 real photo (photo: astronaut coffee chelsea rocket camera)
    /png/<photo>.png            200 the photo as PNG;  /webp/<photo>.webp: as WebP
    /no-content-type/<photo>.jpg  200 photo bytes, no Content-Type header
    /static/<path>              whatever add_file() registered (videos, ...), else 404
    /404, /500                  always that status
    /flaky/[any/]<photo>.jpg    500 on the first request to that path, then 200 (a prefix gives a fresh path)
    /429/<photo>.jpg            429 + Retry-After: 1 on the first request, then 200
    /slow.jpg                   correct Content-Length, body trickled 100 B / 0.5 s
    /truncated.jpg              first 40% of a JPEG, Content-Length matching what is sent
    /html.jpg                   an HTML page labelled image/jpeg
    /bomb.png                   small PNG declaring 20000x20000 pixels
    /huge.jpg                   12 MiB with Content-Length;  /huge-chunked.jpg: chunked, no length
    /redirect-loop              302 to itself;  /loop-a <-> /loop-b: 302 to each other
    /redirect/<n>/<photo>.jpg   n redirects (n >= 1), the last to /img/<photo>.jpg
    /redirect-to?url=<url>      302 to <url> (e.g. a private address the guard must refuse)
    /noai.jpg                   photo + X-Robots-Tag: noai
    /noimageai-ua.jpg           photo + X-Robots-Tag: clipline: noimageai
    /robots-other-ua.jpg        photo + X-Robots-Tag: otherbot: noai (not for us: store it)
    /tiny.jpg, /wide.jpg        real 8x8 and 1000x50 JPEGs, for size / aspect-ratio filters
    anything else               404

Redirect Locations are absolute URLs on this server.

    with TestHTTPServer() as server:
        url = server.url("/img/astronaut.jpg")
        ...
        assert server.hits("/flaky/coffee.jpg") == 2
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

from .images import (
    decompression_bomb_png,
    real_photos,
    reencoded,
    tiny_jpeg,
    truncated_jpeg,
    wide_jpeg,
)

HUGE_BYTES = 12 * 1024 * 1024  # over any sane per-image body cap
STREAM_CHUNK = 64 * 1024
SLOW_CHUNK = 100  # bytes per trickle step: every socket read gets data...
SLOW_INTERVAL_S = 0.5  # ...but the whole photo takes minutes, far over a total-time limit
SLOW_PHOTO = "chelsea"
HTML_PAGE = b"<!doctype html><html><head><title>Not an image</title></head><body></body></html>"
DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True)
class Request:
    """What a route sees: the URL path, the part after a prefix route, the query, and
    `hit`, how many requests this path has had including this one (for fail-first routes)."""

    path: str
    rest: str
    query: dict[str, list[str]]
    hit: int


Route = Callable[[Request], "Reply"]


@dataclass
class Reply:
    """What a route answers.  `body` is bytes, or an iterator of chunks for streaming.

    With `chunked=True` the body is sent with Transfer-Encoding: chunked and no
    Content-Length; otherwise Content-Length is `length` if given, else len(body).
    """

    status: int = HTTPStatus.OK
    body: bytes | Iterable[bytes] = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None
    chunked: bool = False


def _photo_name(rest: str, suffix: str) -> str | None:
    """'astronaut.jpg' -> 'astronaut' when it is a known photo with that suffix."""
    name, dot, ext = rest.rpartition(".")
    if dot and "." + ext == suffix and name in real_photos():
        return name
    return None


def _not_found() -> Reply:
    return Reply(HTTPStatus.NOT_FOUND, b"not found", "text/plain")


def _jpeg(data: bytes, **headers: str) -> Reply:
    return Reply(body=data, content_type="image/jpeg", headers=headers)


class TestHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1:<free port>, serving in a daemon thread.

    Counts hits and remembers the last User-Agent per path (query string ignored), so tests
    can assert retries happened, or did not, and which UA the crawler sent.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._hits: Counter[str] = Counter()
        self._user_agents: dict[str, str | None] = {}
        self._files: dict[str, Reply] = {}
        self._stopping = threading.Event()
        self._httpd = _QuietServer((host, 0), _Handler)  # host: loopback, or a test cluster's bridge
        self._httpd.app = self
        # A short poll interval so stop() returns in ~50 ms rather than the default 0.5 s.
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05}, name="test-http-server")
        self._thread.start()
        # Exact paths first, then the longest matching prefix; unknown paths are 404.
        self.exact: dict[str, Route] = {
            "/404": lambda r: _not_found(),
            "/500": lambda r: Reply(HTTPStatus.INTERNAL_SERVER_ERROR, b"boom", "text/plain"),
            "/slow.jpg": self._slow,
            "/truncated.jpg": lambda r: _jpeg(truncated_jpeg()),
            "/html.jpg": lambda r: _jpeg(HTML_PAGE),
            "/bomb.png": lambda r: Reply(body=decompression_bomb_png(), content_type="image/png"),
            "/huge.jpg": lambda r: self._huge(chunked=False),
            "/huge-chunked.jpg": lambda r: self._huge(chunked=True),
            "/redirect-loop": lambda r: self._redirect("/redirect-loop"),
            "/loop-a": lambda r: self._redirect("/loop-b"),
            "/loop-b": lambda r: self._redirect("/loop-a"),
            "/redirect-to": self._redirect_to,
            "/noai.jpg": lambda r: _robots("noai"),
            "/noimageai-ua.jpg": lambda r: _robots("clipline: noimageai"),
            "/robots-other-ua.jpg": lambda r: _robots("otherbot: noai"),
            "/tiny.jpg": lambda r: _jpeg(tiny_jpeg()),
            "/wide.jpg": lambda r: _jpeg(wide_jpeg()),
        }
        self.prefixes: dict[str, Route] = {
            "/img/": _img,
            "/static/": self._static,
            "/flaky/": lambda r: _fail_first(r, HTTPStatus.INTERNAL_SERVER_ERROR),
            "/429/": lambda r: _fail_first(r, HTTPStatus.TOO_MANY_REQUESTS, {"Retry-After": "1"}),
            "/redirect/": self._redirect_chain,
            "/no-content-type/": _no_content_type,
            "/png/": lambda r: _reencoded(r, ".png", "PNG", "image/png"),
            "/webp/": lambda r: _reencoded(r, ".webp", "WEBP", "image/webp"),
        }

    # -- public API -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def hits(self, path: str) -> int:
        """Requests (GET and HEAD) seen for `path`; a full URL or a query string is fine."""
        with self._lock:
            return self._hits[_key(path)]

    def user_agent(self, path: str) -> str | None:
        """User-Agent of the last request to `path` (None if never requested or absent)."""
        with self._lock:
            return self._user_agents.get(_key(path))

    def add_file(self, path: str, data: bytes, content_type: str,
                 headers: dict[str, str] | None = None) -> str:
        """Serve `data` at /static/<path> (path may already start with /static/); returns URL."""
        rest = path.lstrip("/").removeprefix("static/")
        with self._lock:
            self._files[rest] = Reply(body=data, content_type=content_type,
                                      headers=dict(headers or {}))
        return self.url("/static/" + rest)

    def stop(self) -> None:
        """Stop serving; streaming routes notice within one trickle step and hang up."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch (called from handler threads) ---------------------------------------

    def record(self, path: str, user_agent: str | None) -> int:
        """Count a request and return how many this path has had, including this one."""
        key = _key(path)
        with self._lock:
            self._hits[key] += 1
            self._user_agents[key] = user_agent
            return self._hits[key]

    def route(self, target: str, hit: int) -> Reply:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        if parts.path in self.exact:
            return self.exact[parts.path](Request(parts.path, "", query, hit))
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            if parts.path.startswith(prefix):
                rest = parts.path.removeprefix(prefix)
                return self.prefixes[prefix](Request(parts.path, rest, query, hit))
        return _not_found()

    # -- routes that need server state (files, base URL, stop event) ---------------------

    def _static(self, req: Request) -> Reply:
        with self._lock:
            return self._files.get(req.rest) or _not_found()

    def _redirect(self, location: str) -> Reply:
        if location.startswith("/"):
            location = self.url(location)
        return Reply(HTTPStatus.FOUND, headers={"Location": location})

    def _redirect_chain(self, req: Request) -> Reply:
        """/redirect/<n>/<name>.jpg: n redirects, the last one landing on /img/<name>.jpg."""
        count, _, photo = req.rest.partition("/")
        if not count.isdigit() or int(count) < 1 or _photo_name(photo, ".jpg") is None:
            return _not_found()
        n = int(count)
        return self._redirect(f"/redirect/{n - 1}/{photo}" if n > 1 else f"/img/{photo}")

    def _redirect_to(self, req: Request) -> Reply:
        """302 to any absolute URL, e.g. a private address the crawler's guard must refuse."""
        if not req.query.get("url"):
            return Reply(HTTPStatus.BAD_REQUEST, b"missing url", "text/plain")
        return self._redirect(req.query["url"][0])

    def _slow(self, req: Request) -> Reply:
        """Honest headers, then SLOW_CHUNK bytes every SLOW_INTERVAL_S: only a total-time
        limit catches it, never a per-read timeout."""
        photo = real_photos()[SLOW_PHOTO]
        return Reply(body=self._trickle(photo), content_type="image/jpeg", length=len(photo))

    def _trickle(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), SLOW_CHUNK):
            if start and self._stopping.wait(SLOW_INTERVAL_S):
                return
            yield data[start : start + SLOW_CHUNK]

    def _huge(self, chunked: bool) -> Reply:
        """HUGE_BYTES starting like a JPEG; chunked hides the size so the cap must stream."""
        return Reply(body=self._zeros(real_photos()["astronaut"], HUGE_BYTES),
                     content_type="image/jpeg", length=HUGE_BYTES, chunked=chunked)

    def _zeros(self, head: bytes, total: int) -> Iterator[bytes]:
        yield head
        sent, block = len(head), bytes(STREAM_CHUNK)
        while sent < total and not self._stopping.is_set():
            yield block[: total - sent]
            sent += min(STREAM_CHUNK, total - sent)


# -- stateless routes ---------------------------------------------------------------------


def _img(req: Request) -> Reply:
    name = _photo_name(req.rest, ".jpg")
    return _jpeg(real_photos()[name]) if name else _not_found()


def _fail_first(req: Request, status: int, headers: dict[str, str] | None = None) -> Reply:
    """Fail the first request to this exact path, then serve the photo (retry tests)."""
    name = _photo_name(req.rest.rsplit("/", 1)[-1], ".jpg")
    if name is None:
        return _not_found()
    if req.hit == 1:
        return Reply(status, b"try again", "text/plain", dict(headers or {}))
    return _jpeg(real_photos()[name])


def _robots(tag: str) -> Reply:
    return _jpeg(real_photos()["astronaut"], **{"X-Robots-Tag": tag})


def _no_content_type(req: Request) -> Reply:
    name = _photo_name(req.rest, ".jpg")
    return Reply(body=real_photos()[name]) if name else _not_found()


def _reencoded(req: Request, suffix: str, fmt: str, content_type: str) -> Reply:
    name = _photo_name(req.rest, suffix)
    if name is None:
        return _not_found()
    return Reply(body=reencoded(name, fmt), content_type=content_type)


def _key(path: str) -> str:
    """Hits and UAs are keyed by URL path only: '/x?y=1' and 'http://h:p/x' both map to '/x'."""
    return urlsplit(path).path or "/"


class _QuietServer(ThreadingHTTPServer):
    """Daemon handler threads (a trickling response never blocks exit), and no traceback on
    stderr when a client hangs up mid-request, which crawl tests do on purpose."""

    daemon_threads = True
    app: TestHTTPServer

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], DISCONNECTS):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Thin adapter: record the request, ask the app for a Reply, write it (HEAD: no body)."""

    protocol_version = "HTTP/1.1"  # keep-alive and chunked encoding, like real CDNs
    timeout = 30  # idle keep-alive connections must not pin threads forever
    server_version = "clipline-test/1.0"
    server: _QuietServer

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: one stderr line per request would bury test output."""

    def _serve(self, send_body: bool) -> None:
        app = self.server.app
        hit = app.record(self.path, self.headers.get("User-Agent"))
        reply = app.route(self.path, hit)
        try:
            self._write(reply, send_body)
        except DISCONNECTS:
            self.close_connection = True  # the client gave up (e.g. hit its cap): expected

    def _write(self, reply: Reply, send_body: bool) -> None:
        body = reply.body
        self.send_response(reply.status)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            length = reply.length if reply.length is not None else len(body)  # type: ignore[arg-type]
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if not send_body:
            return
        chunks = [body] if isinstance(body, bytes) else body
        sent = self._write_chunks(chunks, reply.chunked)
        if not reply.chunked and reply.length is not None and sent < reply.length:
            self.close_connection = True  # stopped mid-body: the connection is unusable

    def _write_chunks(self, chunks: Iterable[bytes], chunked: bool) -> int:
        sent = 0
        for chunk in chunks:
            if not chunk:
                continue
            frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            self.wfile.write(frame)
            self.wfile.flush()
            sent += len(chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return sent
