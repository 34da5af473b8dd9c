"""Every data location is a URI; this module is the one place that resolves them.

Accepted forms: a plain path (`data/x`, `/abs/x`), `file://`, `s3://bucket/key`
(endpoint and credentials from the standard AWS variables, for S3-compatible
stores such as MinIO or moto) and `memory://` (tests). Nothing else in
clipline calls `open()` or `os.path` on data.

Files that mark work as done are written with `atomic_write`: a reader never
sees a partial file under its final name. Locally the file and then its folder
are fsynced around the rename, so a power cut cannot undo a commit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractBufferedFile

from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

SUPPORTED_PROTOCOLS = ("file", "s3", "memory")
# Seconds before an S3 endpoint that does not answer is reported as unreachable;
# botocore's default (60 s, 4 retries) would hang a bad config for minutes.
S3_CONNECT_TIMEOUT_S = 5
S3_MAX_ATTEMPTS = 3


def split_protocol(uri: str) -> tuple[str, str]:
    """Return (protocol, path) for a URI, raising ClipLineError if it is malformed."""
    if not isinstance(uri, str) or not uri.strip():
        raise ClipLineError(f"empty location {uri!r}", "give a path, file://, s3:// or memory:// URI")
    if "://" not in uri:
        if ":/" in uri.split("/", 1)[0] or uri.startswith(("s3:", "file:", "memory:")):
            raise ClipLineError(f"malformed URI {uri!r}", "write it as scheme://path, e.g. s3://bucket/key")
        return "file", os.path.abspath(os.path.expanduser(uri))
    protocol, path = uri.split("://", 1)
    if protocol not in SUPPORTED_PROTOCOLS:
        raise ClipLineError(
            f"unsupported storage scheme {protocol!r} in {uri!r}",
            f"use one of: a plain path, {', '.join(p + '://' for p in SUPPORTED_PROTOCOLS)}",
        )
    if protocol == "s3" and (not path or path.startswith("/") or not path.split("/")[0]):
        raise ClipLineError(f"malformed S3 URI {uri!r}: no bucket", "write it as s3://bucket/prefix")
    if protocol == "file":
        return "file", os.path.abspath(path)
    return protocol, path


def s3_options() -> dict:
    """s3fs options from the standard AWS variables (AWS_ENDPOINT_URL[_S3] for non-AWS stores)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict = {
        # Other processes add files all the time (results store, shards): a
        # cached listing would hide them from a reader.
        "use_listings_cache": False,
        "config_kwargs": {
            "connect_timeout": S3_CONNECT_TIMEOUT_S,
            "read_timeout": 60,
            "retries": {"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
        },
    }
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Resolve a URI to (filesystem, path inside it)."""
    protocol, path = split_protocol(uri)
    if protocol == "s3":
        return fsspec.filesystem("s3", **s3_options()), path
    return fsspec.filesystem(protocol), path


def absolute(uri: str) -> str:
    """The same location with a plain local path made absolute (processes that change their working
    directory, such as Ray Train workers, must not resolve it again); other URIs unchanged."""
    split_protocol(uri)
    return os.path.abspath(os.path.expanduser(uri)) if "://" not in uri else uri


def absolute_sources(spec: str) -> str:
    """`absolute` for each '::'-separated source of a shard pattern (braces are left as they are)."""
    return "::".join(absolute(part.strip()) for part in spec.split("::") if part.strip())


def is_local(uri: str) -> bool:
    return split_protocol(uri)[0] == "file"


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI, keeping its scheme."""
    protocol, path = split_protocol(uri)
    joined = posixpath.join(path, *parts)
    return joined if protocol == "file" else f"{protocol}://{joined}"


def to_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URI for a path returned by one of `fs`'s listing calls."""
    if isinstance(fs, LocalFileSystem):
        return path
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}://{path.lstrip('/')}" if protocol != "memory" else f"memory://{path}"


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def list_names(folder_uri: str) -> set[str]:
    """Names of what lies directly in a folder (or S3 prefix), from one listing (never cached: s3_options); empty
    if there is none.

    One listing request (paged by S3 every 1,000 keys) instead of one request per file.
    """
    fs, path = filesystem(folder_uri)
    try:
        return {posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)}
    except FileNotFoundError:
        return set()


def is_dir(uri: str) -> bool:
    """True for an existing folder (or S3 prefix); False for anything else, a malformed URI included."""
    try:
        fs, path = filesystem(uri)
        return fs.isdir(path)
    except (ClipLineError, OSError):
        return False


def files_under(folder_uri: str, depth: int) -> list[str]:
    """Sorted URIs of the files in a folder and its subfolders down to `depth` levels (1: the folder's own), from
    one recursive listing on object storage (s3fs lists folder by folder when given a depth) and a walk bounded
    by `depth` on a local disk; empty if the folder does not exist."""
    fs, path = filesystem(folder_uri)
    path = path.rstrip("/")
    try:
        found = fs.find(path, maxdepth=depth) if is_local(folder_uri) else fs.find(path)
    except FileNotFoundError:
        return []
    return sorted(to_uri(fs, p) for p in found if p[len(path):].strip("/").count("/") < depth)


def glob(uri_pattern: str) -> list[str]:
    """Sorted URIs matching a glob pattern."""
    fs, path = filesystem(uri_pattern)
    return sorted(to_uri(fs, p) for p in fs.glob(path))


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return fs.cat_file(path)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def remove(uri: str) -> None:
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path)


def makedirs(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path, exist_ok=True)


@contextlib.contextmanager
def atomic_write(uri: str, mode: str = "wb") -> Iterator[IO]:
    """Open `uri` for writing so the file appears under its name only when complete.

    On S3 the object appears only when the upload completes; on an exception
    the upload is discarded (s3fs would otherwise publish the partial object
    when the `with` block closes it). Elsewhere (local disk, memory://, which
    publishes a file as soon as it is opened) write `<name>.tmp-<uuid>` beside
    it, then rename it over the final name (atomic on POSIX).
    """
    fs, path = filesystem(uri)
    direct = _publishes_on_close(fs)
    target = path if direct else f"{path}.tmp-{uuid.uuid4().hex}"
    if isinstance(fs, LocalFileSystem):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    f = fs.open(target, mode)
    try:
        yield f
        if isinstance(fs, LocalFileSystem):
            f.flush()
            os.fsync(f.fileno())
        f.close()  # on S3 this uploads the last part and completes the upload: it can fail too
    except BaseException:
        _discard(fs, f, target)
        raise
    if not direct:
        fs.mv(target, path)
        if isinstance(fs, LocalFileSystem):
            fsync_dir(path)


def fsync_dir(path: str) -> None:
    """Make a rename into `path`'s folder durable: without it a power cut can undo the rename."""
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publishes_on_close(fs: fsspec.AbstractFileSystem) -> bool:
    """True where an object becomes visible only when its upload completes (S3)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return "s3" in protocols


def _discard(fs: fsspec.AbstractFileSystem, f, target: str) -> None:
    """Drop an unfinished write without publishing anything under the final name."""
    if isinstance(f, AbstractBufferedFile):
        f.discard()  # s3fs: aborts the multipart upload (a SIGKILL leaves it: see the README's lifecycle rule)
        f.closed = True  # or closing it at garbage collection would upload the rest
        return
    with contextlib.suppress(OSError):
        f.close()
    with contextlib.suppress(FileNotFoundError):
        fs.rm(target)


@contextlib.contextmanager
def staged_file(uri: str) -> Iterator[str]:
    """A local path to build `uri` in; published atomically when the block ends without error.

    Local targets are staged beside the final name and renamed; remote ones in
    a temporary local file, then uploaded with `atomic_write`. Use it where the
    writer is not a file object (tarfile on a path, code inside an event loop).
    """
    if is_local(uri):
        path = split_protocol(uri)[1]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        staged = f"{path}.tmp-{uuid.uuid4().hex}"
    else:
        handle, staged = tempfile.mkstemp(prefix="clipline-", suffix=".staged")
        os.close(handle)
    try:
        yield staged
        if is_local(uri):
            with open(staged, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(staged, path)
            fsync_dir(path)
        else:
            with open(staged, "rb") as src, atomic_write(uri) as dst:
                shutil.copyfileobj(src, dst, 8 * 2**20)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(staged)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file atomically."""
    with atomic_write(uri) as f:
        f.write(data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def move(src: str, dst: str) -> None:
    """Rename `src` over `dst` (same filesystem): atomic locally (then the folder is fsynced); on S3 a server-side
    copy, which publishes `dst` whole, then a delete of `src`."""
    fs, src_path = filesystem(src)
    dst_path = split_protocol(dst)[1]
    if isinstance(fs, LocalFileSystem):
        os.replace(src_path, dst_path)
        fsync_dir(dst_path)
        return
    fs.mv(src_path, dst_path)


def create_exclusive(uri: str, data: bytes) -> bool:
    """Write a whole file only if nothing exists under `uri`; False when something does (a lock's primitive).

    Local: a complete staged file hard-linked to the name (link fails if the name exists). S3: a PUT with
    `If-None-Match: *` (conditional write). memory:// (tests, one process): check then write.
    """
    fs, path = filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        staged = f"{path}.tmp-{uuid.uuid4().hex}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(staged, "wb") as f:
            f.write(data)
        try:
            os.link(staged, path)
            fsync_dir(path)
            return True
        except FileExistsError:
            return False
        finally:
            os.remove(staged)
    if _publishes_on_close(fs):
        try:
            fs.pipe_file(path, data, mode="create")
            return True
        except FileExistsError:
            return False
        except OSError as e:  # s3fs maps 412 Precondition Failed to a plain OSError in some versions
            if "PreconditionFailed" in str(e) or "412" in str(e):
                return False
            raise
    if fs.exists(path):
        return False
    write_bytes(uri, data)
    return True


def check_writable(uri: str) -> None:
    """Fail with one line naming the location and the fix unless `uri` takes writes.

    Run before any work starts: it catches a malformed URI, an S3 endpoint that
    does not answer, a missing bucket and a folder without write permission.
    """
    probe = join(uri, f".clipline-write-probe-{uuid.uuid4().hex}")
    try:
        write_bytes(probe, b"ok")
        remove(probe)
    except ClipLineError:
        raise
    except PermissionError as e:
        raise ClipLineError(f"no write permission at {uri}",
                            "choose a location you can write to, or fix its permissions") from e
    except Exception as e:
        raise ClipLineError(f"cannot write to {uri}: {describe_error(e, uri)}", fix_for(uri)) from e


def describe_error(e: Exception, uri: str) -> str:
    """One line saying why a storage call on `uri` failed."""
    protocol = split_protocol(uri)[0]
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    unreachable = ("Could not connect" in text or "Connect timeout" in text
                   or "EndpointConnection" in type(e).__name__)
    if protocol == "s3" and unreachable:
        endpoint = s3_options().get("endpoint_url", "the AWS default endpoint")
        return f"S3 endpoint {endpoint} is unreachable"
    return f"{type(e).__name__}: {text}"


def fix_for(uri: str) -> str:
    """What to check when a storage call on `uri` failed."""
    if split_protocol(uri)[0] == "s3":
        return "check AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and that the bucket exists"
    return "check the path and its permissions"
