"""Storage: URI resolution, atomic writes and up-front location checks."""

from __future__ import annotations

import os

import pytest

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError


@pytest.mark.parametrize("uri, protocol", [
    ("data/x", "file"), ("/abs/x", "file"), ("file:///abs/x", "file"),
    ("s3://bucket/key", "s3"), ("memory://x/y", "memory"),
])
def test_uri_forms_resolve_to_their_filesystem(uri, protocol):
    assert storage.split_protocol(uri)[0] == protocol


@pytest.mark.parametrize("uri, words", [
    ("s3:/bucket/key", "malformed URI"), ("s3://", "no bucket"), ("s3:///key", "no bucket"),
    ("ftp://host/x", "unsupported storage scheme 'ftp'"), ("", "empty location"),
])
def test_malformed_uris_are_named_with_a_fix(uri, words):
    with pytest.raises(ClipLineError, match=words) as info:
        storage.split_protocol(uri)
    assert info.value.fix


def test_join_keeps_the_scheme():
    assert storage.join("s3://b/p", "t", "f.parquet") == "s3://b/p/t/f.parquet"
    assert storage.join("/tmp/x", "t") == "/tmp/x/t"


def _fail_midway(uri: str) -> None:
    with pytest.raises(RuntimeError), storage.atomic_write(uri) as f:
        f.write(b"partial" * 1000)
        raise RuntimeError("crash while writing")


def test_local_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = str(tmp_path / "sub" / "file.bin")
    _fail_midway(target)
    assert os.listdir(tmp_path / "sub") == []
    storage.write_bytes(target, b"whole")
    assert storage.read_bytes(target) == b"whole"
    assert os.listdir(tmp_path / "sub") == ["file.bin"]


def test_local_atomic_write_never_exposes_a_partial_file(tmp_path):
    target = str(tmp_path / "file.bin")
    with storage.atomic_write(target) as f:
        f.write(b"first half")
        assert not os.path.exists(target)
        f.write(b" second half")
    assert storage.read_bytes(target) == b"first half second half"


def test_s3_atomic_write_publishes_only_complete_objects(s3_uri):
    target = storage.join(s3_uri, "dir", "obj.bin")
    _fail_midway(target)
    assert not storage.exists(target)
    storage.write_bytes(target, b"x" * (6 * 2**20))  # over s3fs's 5 MiB multipart block
    assert len(storage.read_bytes(target)) == 6 * 2**20


def test_memory_atomic_write_discards_on_failure():
    target = "memory://atomic-test/obj.bin"
    _fail_midway(target)
    assert not storage.exists(target)


def test_glob_returns_uris_with_scheme(s3_uri):
    for name in ("b.txt", "a.txt"):
        storage.write_text(storage.join(s3_uri, "g", name), name)
    assert storage.glob(storage.join(s3_uri, "g", "*.txt")) == [
        storage.join(s3_uri, "g", "a.txt"), storage.join(s3_uri, "g", "b.txt")]


def test_check_writable_accepts_a_writable_folder_and_leaves_no_probe(tmp_path):
    storage.check_writable(str(tmp_path / "results"))
    assert os.listdir(tmp_path / "results") == []


def test_check_writable_names_an_unreachable_s3_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ClipLineError, match=r"S3 endpoint http://127.0.0.1:9 is unreachable"):
        storage.check_writable("s3://bucket/results")


def test_check_writable_names_a_missing_bucket(s3_endpoint):
    with pytest.raises(ClipLineError, match="cannot write to s3://no-such-bucket-x/r") as info:
        storage.check_writable("s3://no-such-bucket-x/r")
    assert "bucket exists" in info.value.fix


def test_check_writable_names_a_folder_without_write_permission(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    tmp_path.chmod(0o755)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # root ignores permission bits: check as an unprivileged user
        os.close(read)
        message = "no error"
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            storage.check_writable(str(folder / "r"))
        except ClipLineError as e:
            message = str(e)
        finally:
            os.write(write, message.encode())
            os._exit(0)
    os.close(write)
    message = os.read(read, 4096).decode()
    os.waitpid(pid, 0)
    assert message.startswith(f"no write permission at {folder / 'r'}")


def test_local_commits_fsync_the_file_and_then_its_folder(tmp_path, monkeypatch):
    import os
    import stat

    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), stat.S_ISDIR(os.fstat(fd).st_mode)))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", spy)
    folder = tmp_path / "out"
    storage.write_bytes(str(folder / "a.bin"), b"a")
    with storage.staged_file(str(folder / "b.bin")) as path, open(path, "wb") as f:
        f.write(b"b")
    assert storage.create_exclusive(str(folder / "c.lock"), b"c")
    directories = [name for name, is_dir in synced if is_dir]
    assert directories == [str(folder)] * 3  # once after each rename or link
    assert sum(not is_dir for _, is_dir in synced) >= 2  # atomic_write's and staged_file's contents


def test_create_exclusive_lets_exactly_one_writer_win(tmp_path, s3_uri):
    for root in (str(tmp_path), s3_uri):
        uri = storage.join(root, "x.lock")
        assert storage.create_exclusive(uri, b"first")
        assert not storage.create_exclusive(uri, b"second")
        assert storage.read_bytes(uri) == b"first"
