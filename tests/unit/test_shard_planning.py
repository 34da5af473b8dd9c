"""Planning over many shards on S3 costs a few listing requests, not one request per shard (#15)."""

from __future__ import annotations

import json

import pytest
import s3fs

from clipline.pipelines import storage
from clipline.pipelines.data.loader import check_shards, dataset_size, expand_shards
from clipline.pipelines.errors import ClipLineError


def write_shards(root: str, count: int) -> str:
    """`count` shard objects (their bytes do not matter to planning) and the sizes.json beside them."""
    fs, path = storage.filesystem(root)
    names = [f"{i:05d}.tar" for i in range(count)]
    fs.pipe({f"{path}/{name}": b"x" for name in names} | {
        f"{path}/sizes.json": json.dumps({name: 10 for name in names}).encode()})
    return f"{root}/{{00000..{count - 1:05d}}}.tar"


@pytest.fixture
def s3_requests(monkeypatch):
    """Every request s3fs sends, by operation name (s3fs sends them all through `_call_s3`)."""
    sent: list[str] = []
    real = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        sent.append(getattr(method, "__name__", str(method)))
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counted)
    return sent


def planning_requests(spec: str, sent: list[str]) -> int:
    before = len(sent)
    urls = expand_shards(spec)
    check_shards(urls)
    assert dataset_size(urls) == 10 * len(urls)
    return len(sent) - before


def test_planning_requests_do_not_grow_with_the_number_of_shards(s3_uri, s3_requests):
    few = planning_requests(write_shards(f"{s3_uri}/few", 20), s3_requests)
    many = planning_requests(write_shards(f"{s3_uri}/many", 400), s3_requests)
    assert many == few <= 4, s3_requests[-many:]


def test_missing_shards_are_found_from_a_fresh_listing(s3_uri):
    spec = write_shards(f"{s3_uri}/gap", 30)
    check_shards(expand_shards(spec))  # lists the folder (s3fs would cache that listing)
    other_writer = s3fs.S3FileSystem(skip_instance_cache=True, **storage.s3_options())  # another process, say
    other_writer.rm(f"{s3_uri}/gap/00017.tar".removeprefix("s3://"))
    with pytest.raises(ClipLineError, match=r"^2 of 31 shards do not exist, e\.g\. s3://.*/gap/00017\.tar"):
        check_shards(expand_shards(spec.replace("00029", "00030")))
