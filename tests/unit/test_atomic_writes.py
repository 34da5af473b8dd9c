"""Every writer of shards, checkpoints and store files, watched by a reader while it writes slowly.

Each write is slowed down where it reaches the storage layer (every file object
`storage` opens for writing writes in small pieces with a pause between them;
tar streams are fed one sample at a time). A reader thread polls the final
names all the while: whenever a name exists, its bytes must be the finished
file's. A write that publishes under the final name before it is complete
fails here, locally and on S3.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator

import fsspec
import pytest
import torch

from clipline.pipelines import storage
from clipline.pipelines.config import StoreConfig
from clipline.pipelines.crawl import writer
from clipline.pipelines.shard_format import ShardFiles
from clipline.pipelines.store.layout import table_files
from clipline.pipelines.store.writer import ResultsWriter, now
from clipline.pipelines.train.checkpoint import COMMITTED, CONFIG, STATE, WEIGHTS, save_checkpoint

PIECES = 10  # each write() reaches the file in this many pieces
PAUSE_S = 0.03


class Poller:
    """Reads `uris` over and over in a thread; keeps every distinct content seen under each name."""

    def __init__(self, uris: Callable[[], list[str]]):
        self._uris = uris
        self.seen: dict[str, set[bytes]] = {}
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for uri in self._uris():
                with contextlib.suppress(FileNotFoundError):
                    self.seen.setdefault(uri, set()).add(storage.read_bytes(uri))
            self.polls += 1
            time.sleep(0.002)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def check(self, minimum_polls: int = 3) -> None:
        """Every content seen under a name is its final content; the reader did poll during the write."""
        assert self.polls >= minimum_polls
        for uri, contents in self.seen.items():
            final = storage.read_bytes(uri)
            partial = [len(c) for c in contents if c != final]
            assert not partial, f"{uri}: a reader saw {partial} bytes of {len(final)}"


@pytest.fixture
def slow_writes(monkeypatch):
    """Every file storage opens for writing takes each write() in PIECES pieces, flushed, with pauses."""
    real_filesystem = storage.filesystem

    def filesystem(uri: str):
        fs, path = real_filesystem(uri)
        if not getattr(fs, "_clipline_slow", False):
            real_open = fs.open

            def slow_open(p, mode="rb", *args, **kwargs):
                f = real_open(p, mode, *args, **kwargs)
                if "w" in mode:
                    f.write = _slow(f.write, f.flush)
                return f
            monkeypatch.setattr(fs, "open", slow_open, raising=False)
            monkeypatch.setattr(fs, "_clipline_slow", True, raising=False)
        return fs, path
    monkeypatch.setattr(storage, "filesystem", filesystem)
    yield
    fsspec.AbstractFileSystem.clear_instance_cache()


def _slow(write, flush):
    def slow_write(data) -> int:
        data = bytes(data)
        step = max(1, -(-len(data) // PIECES))
        for start in range(0, len(data), step):
            write(data[start:start + step])
            flush()
            time.sleep(PAUSE_S)
        return len(data)
    return slow_write


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> str:
    return str(tmp_path / "out") if request.param == "local" else f"{request.getfixturevalue('s3_uri')}/out"


def _under(root: str) -> Callable[[], list[str]]:
    """Every file below `root` right now, staging names excluded (they are not final names)."""
    def uris() -> list[str]:
        return [u for u in storage.glob(storage.join(root, "**")) if ".tmp-" not in u and not storage.is_dir(u)]
    return uris


@contextlib.contextmanager
def watched(root: str, *names: str) -> Iterator[Poller]:
    """Poll the named files under `root` (or everything under it when none are named)."""
    uris = (lambda: [storage.join(root, n) for n in names]) if names else _under(root)
    with Poller(uris) as poller:
        yield poller
    poller.check()


def test_staged_file_publishes_only_the_whole_file(root, slow_writes):
    uri = storage.join(root, "staged.bin")
    with watched(root, "staged.bin") as poller, storage.staged_file(uri) as path, open(path, "wb") as f:
        for i in range(20):
            f.write(bytes([i]) * 1000)
            f.flush()
            time.sleep(PAUSE_S)
    assert storage.read_bytes(uri) == b"".join(bytes([i]) * 1000 for i in range(20))
    assert poller.seen.get(uri, set()) <= {storage.read_bytes(uri)}


def test_atomic_write_publishes_only_the_whole_file(root, slow_writes):
    uri = storage.join(root, "atomic.bin")
    with watched(root, "atomic.bin"):
        storage.write_bytes(uri, bytes(range(256)) * 400)
    assert storage.read_bytes(uri) == bytes(range(256)) * 400


def test_shard_tar_parquet_stats_and_sizes_appear_only_whole(root, slow_writes):
    files = ShardFiles.of(root, 0)
    with watched(root):
        with writer.tar_sink(files.tar) as sink:
            for i in range(12):
                sink.add(f"{i:09d}", {"jpg": bytes([i]) * 3000, "txt": b"a caption"})
                time.sleep(PAUSE_S)
        writer.write_status_parquet(files.parquet, [{"key": f"{i:09d}", "status": "success"} for i in range(12)])
        writer.commit(files, {"shard_id": 0, "count": 12})
        writer.write_sizes(root, {0: 12})
    assert json.loads(storage.read_text(files.stats))["count"] == 12


def test_store_files_appear_only_whole(root, slow_writes):
    results = storage.join(root, "results")
    with watched(results), ResultsWriter(StoreConfig(results_uri=results)) as store:
        store.append("eval_results", [_eval_row(i) for i in range(200)])
        store.flush()
    assert table_files(results, "eval_results")


def test_checkpoint_files_appear_only_whole(root, slow_writes):
    model = torch.nn.Linear(64, 64)
    step_folder = "checkpoints/step-00000003"
    with watched(root, *(f"{step_folder}/{n}" for n in (WEIGHTS, CONFIG, STATE, COMMITTED))):
        uri = save_checkpoint(root, 3, model, {"embed_dim": 64}, {"step": 3, "optimizer": model.state_dict()})
    assert storage.read_text(storage.join(uri, COMMITTED)) == "3"


def _eval_row(i: int) -> dict:
    return {"run_id": "r", "time": now(), "checkpoint": "c", "dataset": "d", "task": "zeroshot",
            "strategy": "single", "metric": f"m{i}",
            "value": float(i)}


def test_a_failed_s3_write_aborts_its_multipart_upload(s3_uri, monkeypatch):
    """An S3 write that fails mid-way publishes nothing and leaves no multipart upload behind (its parts
    would be stored, and billed, until a lifecycle rule removed them)."""
    import s3fs

    monkeypatch.setattr(s3fs.S3FileSystem, "default_block_size", 5 * 2**20)  # S3's smallest part: 2 parts below
    uri = f"{s3_uri}/out/big.bin"
    fs, _ = storage.filesystem(uri)
    bucket = s3_uri.removeprefix("s3://").split("/")[0]
    with pytest.raises(RuntimeError, match="the writer failed"), storage.atomic_write(uri) as f:
        for _ in range(12):
            f.write(b"\0" * 2**20)
        assert fs.list_multipart_uploads(bucket), "the write never started a multipart upload: the test is moot"
        raise RuntimeError("the writer failed")
    assert not storage.exists(uri)
    assert fs.list_multipart_uploads(bucket) == []
