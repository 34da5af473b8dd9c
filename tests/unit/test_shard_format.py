"""The shard format: keys, member names, indexing and reading tars back, as webdataset and every stage see them."""

from __future__ import annotations

import io
import json
import random
import tarfile

import pytest
import webdataset as wds

from clipline.pipelines import shard_format, storage
from clipline.pipelines.crawl.writer import tar_sink, write_sizes
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.shard_format import (
    ShardFiles,
    frame_ext,
    index_tar,
    make_key,
    member_name,
    read_members,
    read_samples,
    read_sizes,
    sample_images,
    split_member,
    stream_members,
)


def _raw_tar(path, members: dict[str, bytes]) -> str:
    """A tar written with tarfile alone, in the order given (no clipline code involved)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def _webdataset_samples(uri: str) -> list[dict]:
    return list(wds.DataPipeline(wds.SimpleShardList([uri]), wds.tarfile_to_samples()))


def test_keys_sort_in_input_order_and_survive_webdataset_splitting(tmp_path):
    keys = [make_key(shard, i, 1000) for shard in (0, 3) for i in (0, 9, 10, 999)]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    with tar_sink(str(tmp_path / "k.tar")) as sink:
        for key in keys:
            sink.add(key, {"jpg": b"i", "txt": b"c", frame_ext(2, "jpg"): b"f"})
    assert [s["__key__"] for s in _webdataset_samples(str(tmp_path / "k.tar"))] == keys


def _tarfile_bytes(path, samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    """The tar Python's tarfile writes for these samples, with the writer's settings (USTAR, mode 0o444, mtime 0)."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o444, 0
                tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


@pytest.mark.parametrize("count", [0, 1, 7, 200])
def test_the_tar_writer_writes_the_bytes_tarfile_writes(tmp_path, count):
    rng = random.Random(count)
    keys = ["000010042", "k" * 91, "ké€", "x"]  # "k" * 91 + ".f000.jpg": a name of exactly USTAR's 100 bytes
    sizes = [0, 1, 511, 512, 513, 3000, 20_000]  # either side of the 512-byte block
    samples = [(rng.choice(keys), {ext: rng.randbytes(rng.choice(sizes))
                                   for ext in rng.sample(["jpg", "txt", "json", "f000.jpg"], rng.randint(1, 4))})
               for _ in range(count)]
    with tar_sink(str(tmp_path / "ours.tar")) as sink:
        for key, members in samples:
            sink.add(key, members)
    ours = (tmp_path / "ours.tar").read_bytes()
    assert ours == _tarfile_bytes(tmp_path / "theirs.tar", samples)
    assert sink.bytes_written == sum(len(data) for _, members in samples for data in members.values())


def test_a_member_name_over_ustars_100_bytes_is_refused_as_tarfile_refuses_it(tmp_path):
    with pytest.raises(ValueError, match="too long"), tar_sink(str(tmp_path / "long.tar")) as sink:
        sink.add("k" * 97, {"jpg": b"x"})
    assert not list(tmp_path.iterdir())  # nothing published, no staging file left


@pytest.mark.parametrize("key", ["a.b", "", "dir/key"])
def test_a_key_webdataset_would_split_is_refused(key):
    with pytest.raises(ValueError, match="dot or a slash"):
        member_name(key, "jpg")


@pytest.mark.parametrize("name", ["0001.jpg", "0001.f003.jpg", "dir/0001.txt", "0001.JSON", "a/b.c/0001.tar.gz",
                                  "noext", "dir.with.dots/file"])
def test_member_names_split_as_webdataset_splits_them(tmp_path, name):
    uri = _raw_tar(tmp_path / "one.tar", {name: b"x"})
    theirs = _webdataset_samples(uri)
    ours = split_member(name)
    if not theirs:
        assert ours is None
    else:
        (sample,) = theirs
        ext = next(k for k in sample if not k.startswith("__"))
        assert ours == (sample["__key__"], ext.lower())


def test_index_finds_images_frames_and_texts_without_reading_images(tmp_path):
    uri = _raw_tar(tmp_path / "mixed.tar", {
        "a.png": b"img-a", "a.txt": b" a caption \n", "a.json": b'{"label": 1}',
        "v.f010.jpg": b"ten", "v.f002.jpg": b"two", "v.txt": b"clip", "v.cls": b"3",
        "textonly.txt": b"no image", "b.webp": b"img-b", "b.unknown": b"?",
    })
    samples = {s.key: s for s in index_tar(uri)}
    assert list(samples) == ["a", "v", "b"]  # member order; a sample without an image is not a sample
    assert samples["a"].images == ("a.png",) and samples["a"].caption == "a caption"
    assert samples["a"].texts == {"txt": " a caption \n", "json": '{"label": 1}'}
    assert samples["v"].images == ("v.f002.jpg", "v.f010.jpg")  # by frame number
    assert samples["v"].texts["cls"] == "3"
    assert samples["b"].caption is None
    assert index_tar(uri, text_exts=("txt",))[0].texts == {"txt": " a caption \n"}


def test_members_come_back_in_the_order_asked_in_one_pass(tmp_path):
    uri = _raw_tar(tmp_path / "m.tar", {f"{i:03d}.jpg": bytes([i]) for i in range(20)})
    assert read_members(uri, ["015.jpg", "002.jpg", "015.jpg"]) == [b"\x0f", b"\x02", b"\x0f"]
    assert [name for name, _ in stream_members(uri, ["015.jpg", "002.jpg"])] == ["002.jpg", "015.jpg"]
    with pytest.raises(ClipLineError, match="vanished.*099.jpg"):
        read_members(uri, ["001.jpg", "099.jpg"])


def test_a_truncated_tar_is_an_error_naming_it(tmp_path):
    uri = _raw_tar(tmp_path / "t.tar", {f"{i}.jpg": b"x" * 5000 for i in range(4)})
    data = (tmp_path / "t.tar").read_bytes()
    (tmp_path / "t.tar").write_bytes(data[:len(data) // 2 + 100])
    with pytest.raises(ClipLineError, match="t.tar"):
        index_tar(uri)


def test_samples_read_back_as_the_writer_wrote_them(s3_uri):
    uri = f"{s3_uri}/shards/00000.tar"
    written = {"000": {"jpg": b"one", "txt": b"c1"}, "001": {frame_ext(0, "png"): b"f0", "json": b"{}"}}
    with tar_sink(uri) as sink:
        for key, members in written.items():
            sink.add(key, members)
    assert read_samples(uri) == written
    assert [s.key for s in index_tar(uri)] == ["000", "001"]


def test_sizes_json_round_trips_and_names_the_tars(tmp_path):
    write_sizes(str(tmp_path), {1: 7, 0: 3})
    assert json.loads((tmp_path / "sizes.json").read_text()) == {"00000.tar": 3, "00001.tar": 7}
    assert read_sizes(str(tmp_path)) == {"00000.tar": 3, "00001.tar": 7}
    assert read_sizes(str(tmp_path / "none")) == {}
    files = ShardFiles.of(str(tmp_path), 12)
    assert [storage.join(str(tmp_path), n) for n in ("00012.tar", "00012.parquet", "00012_stats.json")] == \
        [files.tar, files.parquet, files.stats]


def test_a_decoded_sample_yields_its_image_or_its_frames_in_order():
    assert sample_images({"__key__": "k", "png": b"p", "txt": b"c"}) == [b"p"]
    frames = {"__key__": "k", "f001.jpg": b"1", "f000.jpg": b"0", "f010.jpg": b"10"}
    assert sample_images(frames) == [b"0", b"1", b"10"]
    assert sample_images({"__key__": "k", "txt": b"c"}) == []
    assert shard_format.is_image_ext("f123.webp") and not shard_format.is_image_ext("f12.txt")
