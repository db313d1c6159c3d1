"""Caches that cannot lie (issue 38, items 1 and 2): a pixel cache or a shard index changed on disk is seen, and
what is served is what the fingerprint and the labels say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lpq.cli.app import app
from lpq.data import ImageSource, open_images
from lpq.data.sources import cache_location, decode
from lpq.errors import LpqError, LpqWarning
from lpq.format import LpqlReader

runner = CliRunner()


@pytest.fixture(scope="module")
def distilled(digits_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distilled set as a folder of PNGs: real digits, 3 per class."""
    out = tmp_path_factory.mktemp("distilled") / "ipc3"
    args = ["synth", "--teacher", str(digits_teacher), "--ipc", "3", "--init", "real", "--iterations", "0"]
    result = runner.invoke(app, [*args, "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def invert(path: Path, start: int, count: int) -> None:
    """Flip every bit of ``count`` bytes from ``start``, as a failing disk or a stray write would."""
    data = bytearray(path.read_bytes())
    data[start : start + count] = bytes(255 - b for b in data[start : start + count])
    path.write_bytes(bytes(data))


def labels_of(path: Path) -> tuple[str, list[np.ndarray]]:
    with LpqlReader(path) as r:
        return r.header.images.fingerprint, [r.read(int(b)).values for b in r.batch_ids]


class Loads(torch.utils.data.Dataset):
    def __init__(self, images: ImageSource) -> None:
        self.images = images

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images.load(index)


def test_a_pixel_cache_changed_on_disk_is_rebuilt_and_the_labels_stay_right(
    distilled: Path, digits_teacher: Path, tmp_path: Path
) -> None:
    """Before: relabel exited 0 with other labels under the same fingerprint (read from the cache's meta.json)."""
    args = ["relabel", str(distilled), "--teacher", str(digits_teacher), "--epochs", "2", "-q"]
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "a.lpql")]).exit_code == 0
    pixels = cache_location(distilled) / "pixels.u8"
    invert(pixels, 100, 3000)
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "b.lpql")])
    assert result.exit_code == 0, result.output
    warned = result.stderr.strip().splitlines()
    assert len(warned) == 1 and "holds other pixels than its fingerprint says: rebuilt" in warned[0], warned
    (fa, a), (fb, b) = labels_of(tmp_path / "a.lpql"), labels_of(tmp_path / "b.lpql")
    assert fa == fb and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("part", ["sizes.npy", "offsets.npy", "checks.npy", "meta.json"])
def test_an_edited_cache_index_is_seen_and_rebuilt(distilled: Path, part: str) -> None:
    images = open_images(str(distilled))
    truth = [images.load(i).clone() for i in range(len(images))]
    index = cache_location(distilled) / part
    if part == "meta.json":  # a fingerprint that is not the pixels'
        index.write_text(index.read_text().replace(images.fingerprint(), "0" * 64))
    else:
        a = np.load(index)
        a[1] = a[0] if part != "sizes.npy" else a[1] + 1  # image 1 said to be image 0, or of another size
        np.save(index, a)
    with pytest.warns(LpqWarning, match="rebuilt"):
        again = open_images(str(distilled))
    assert again.fingerprint() == images.fingerprint()
    assert all(torch.equal(again.load(i), truth[i]) for i in range(len(truth)))


def test_a_cache_changed_while_in_use_stops_with_one_line(distilled: Path) -> None:
    """Pixels read after the open are checked too (CRC-32 per image): in the process and in a DataLoader worker."""
    images = open_images(str(distilled))
    files = sorted(p for p in distilled.rglob("*.png"))
    assert torch.equal(images.load(4), decode(files[4]))
    h, w = images.sizes()[4]
    invert(cache_location(distilled) / "pixels.u8", int(4 * 3 * h * w) + 7, 1)  # one byte of image 4
    with pytest.raises(LpqError, match=r"image 4 of the pixel cache .* changed on disk while in use"):
        images.load(4)
    loader = torch.utils.data.DataLoader(Loads(images), batch_size=None, num_workers=1, sampler=[3, 4])
    with pytest.raises(LpqError) as caught:
        list(loader)
    error = caught.value.with_traceback(None)  # the traceback holds the loader's iterator: freed here, not by the
    del caught  # garbage collector (which would wait 5 s for its worker, in whichever test runs next)
    assert error.ref == "cache-corrupt" and "\n" not in str(error)
    with pytest.warns(LpqWarning, match="rebuilt"):  # the next open repairs it
        open_images(str(distilled))


def write_shard(path: Path, labels: list[int], side: int = 16) -> None:
    """A webdataset shard of len(labels) JPEGs (each a flat colour) with .cls labels."""
    import io

    import webdataset as wds
    from PIL import Image

    with wds.TarWriter(str(path)) as sink:
        for i, label in enumerate(labels):
            buf = io.BytesIO()
            Image.fromarray(np.full((side, side, 3), 20 * i, np.uint8)).save(buf, format="JPEG")
            sink.write({"__key__": f"{i:06d}", "jpg": buf.getvalue(), "cls": label})


@pytest.fixture
def shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LPQ_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "shards").mkdir()
    path = tmp_path / "shards" / "train-0.tar"
    write_shard(path, [0, 1, 2, 0, 1, 2])
    return path


def test_an_edited_shard_index_is_seen_and_rebuilt(shard: Path, tmp_path: Path) -> None:
    """Before: labels + 1 in the cached index trained on wrong classes, exit 0."""
    from lpq.data.shards import open_shards

    truth = open_shards(str(shard)).labels.clone()
    (index,) = (tmp_path / "cache" / "wds").glob("*.npz")
    with np.load(index) as z:
        parts = dict(z)
    np.savez(index, **{**parts, "labels": parts["labels"] + 1})
    with pytest.warns(LpqWarning, match="does not match its digest: indexed again"):
        again = open_shards(str(shard))
    assert torch.equal(again.labels, truth)


def test_a_shard_rewritten_with_its_size_and_time_is_indexed_again(shard: Path) -> None:
    """Before: the index was keyed by size and modification time, which a rewrite (or a copy tool) can restore."""
    import os

    from lpq.data.shards import open_shards

    assert open_shards(str(shard)).labels.tolist() == [0, 1, 2, 0, 1, 2]
    st = shard.stat()
    write_shard(shard, [2, 0, 1, 2, 0, 1])  # same bytes but the labels' digits: same size
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert shard.stat().st_size == st.st_size and shard.stat().st_mtime_ns == st.st_mtime_ns
    assert open_shards(str(shard)).labels.tolist() == [2, 0, 1, 2, 0, 1]


def test_a_shard_changed_while_in_use_stops_by_name(shard: Path) -> None:
    """Each image read brings its tar header along: bytes of another member are never decoded as this one."""
    from lpq.data.shards import open_shards

    source = open_shards(str(shard))
    assert source.load(1).shape == (3, 16, 16)
    write_shard(shard, [0, 1, 2, 0, 1, 2], side=24)  # larger images: every member after the first has moved
    with pytest.raises(LpqError, match=r"train-0.tar changed since it was indexed: sample 000001 is not where it was"):
        source.load(1)


def test_writers_of_one_cache_file_in_two_processes_never_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every torchrun rank indexes the same shards into one cache file. Two writers interleaved, as two ranks are,
    both finish and the last rename wins; with one temporary name for all, the second writer removed the first's
    half-written file and the first rename failed ('No such file or directory (.../wds/.<key>.npz.partial)': a
    squeeze rank stopped under torchrun in CI)."""
    import os

    from lpq.files import atomic

    target = tmp_path / "index.npz"
    with atomic(target, unique=True) as first:
        first.write_bytes(b"rank 0")
        pid = os.getpid()
        monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # the other rank
        with atomic(target, unique=True) as second:
            second.write_bytes(b"rank 1")
        monkeypatch.undo()
    assert target.read_bytes() == b"rank 0" and not list(tmp_path.glob(".*partial"))
