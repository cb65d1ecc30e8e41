"""Cache safety (issue 7): keys change with exactly what a value depends on; damaged entries are never used.

Every expensive per-image result is stored under ``make_key(file_digest(path), params, CODE_VERSION)``,
so these properties are what makes a rerun's reuse of cached work trustworthy.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from skinbench import cache as cache_mod
from skinbench.cache import ArrayCache, atomic_write_bytes, file_digest, make_key


def _entries(cache: ArrayCache) -> list[Path]:
    return sorted(cache.dir.rglob("*.npz"))


def _leftovers(folder: Path) -> list[Path]:
    """Temporary files an atomic write may leave behind (``.<name>.<random>.tmp``)."""
    return [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------------- keys

def test_key_depends_on_image_bytes_params_and_code_version(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"\x89PNG pixels 0123456789")
    b.write_bytes(b"\x89PNG pixels 0123456789")
    params = {"image_size": 384, "detector": "sift"}
    base = make_key(file_digest(a), params, "v1")
    # the same content under another name is the same work: the key follows content, not the path
    assert make_key(file_digest(b), params, "v1") == base
    # one changed byte, one changed parameter, a bumped code version: each gives a new key
    b.write_bytes(b"\x89PNG pixels 0123456780")
    os.utime(b, ns=(1, 1))  # even with a misleading mtime the size/mtime memo must not hide the change
    changed_byte = make_key(file_digest(b), params, "v1")
    changed_param = make_key(file_digest(a), {**params, "image_size": 256}, "v1")
    changed_code = make_key(file_digest(a), params, "v2")
    keys = {base, changed_byte, changed_param, changed_code}
    assert len(keys) == 4
    # parameter order does not matter (JSON with sorted keys)
    assert make_key(file_digest(a), {"detector": "sift", "image_size": 384}, "v1") == base


def test_file_digest_sees_an_in_place_rewrite(tmp_path):
    """The in-process memo is keyed by (path, mtime, size): a rewrite with new bytes is re-hashed."""
    p = tmp_path / "img.png"
    p.write_bytes(b"first content")
    first = file_digest(p)
    p.write_bytes(b"other content, longer")
    assert file_digest(p) != first
    assert file_digest(p) == cache_mod.digest_bytes(b"other content, longer")


def test_a_change_invalidates_exactly_what_depends_on_it(tmp_path):
    """Three images cached; editing one image recomputes that one only, a parameter change recomputes all."""
    images = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(f"pixels of image {i}".encode())
        images.append(p)
    cache = ArrayCache("features", tmp_path / "cache")
    computed: list[str] = []

    def features(path: Path, scale: int, version: str) -> np.ndarray:
        def compute() -> dict[str, np.ndarray]:
            computed.append(path.name)
            return {"f": np.frombuffer(path.read_bytes(), np.uint8).astype(np.float32) * scale}

        return cache.get_or_compute(make_key(file_digest(path), {"scale": scale}, version), compute)["f"]

    first = [features(p, 2, "v1") for p in images]
    assert computed == ["img0.png", "img1.png", "img2.png"]
    computed.clear()
    again = [features(p, 2, "v1") for p in images]
    assert computed == []  # all reused
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    images[1].write_bytes(b"edited pixels of image 1")
    edited = [features(p, 2, "v1") for p in images]
    assert computed == ["img1.png"]  # only the edited image
    np.testing.assert_array_equal(edited[1], np.frombuffer(b"edited pixels of image 1", np.uint8) * 2.0)
    computed.clear()
    [features(p, 3, "v1") for p in images]
    assert computed == ["img0.png", "img1.png", "img2.png"]
    computed.clear()
    [features(p, 2, "v2") for p in images]
    assert computed == ["img0.png", "img1.png", "img2.png"]


def test_local_feature_keys_follow_descriptor_params(tmp_path, monkeypatch):
    """The BoVW descriptor cache key changes with every DescriptorParams field and with CODE_VERSION."""
    import dataclasses

    pytest.importorskip("cv2")  # skip on the third-party package; a broken skinbench module must fail
    from skinbench.approaches import local_features as lf
    p = tmp_path / "x.png"
    p.write_bytes(b"some bytes")
    default = lf.DescriptorParams()
    base = lf.descriptor_key(str(p), default)
    assert lf.descriptor_key(str(p), lf.DescriptorParams()) == base
    alternatives = {str: ("dense", "sift"), int: (256, 512), float: (0.01, 0.02), bool: (True, False),
                    tuple: ((8, 16), (16,))}
    changed = 0
    for field in dataclasses.fields(default):
        value = getattr(default, field.name)
        for alt in alternatives.get(type(value), ()):
            if alt != value:
                try:
                    other = dataclasses.replace(default, **{field.name: alt})
                except Exception:  # not a valid value for this field
                    continue
                assert lf.descriptor_key(str(p), other) != base, field.name
                changed += 1
                break
    assert changed >= 3
    monkeypatch.setattr(lf, "CODE_VERSION", lf.CODE_VERSION + "-bumped")
    assert lf.descriptor_key(str(p), default) != base


# ----------------------------------------------------------------------------------- damaged entries

def _corruptions(data: bytes) -> dict[str, bytes]:
    mid = len(data) // 2
    flipped = bytearray(data)
    flipped[mid] ^= 0xFF
    return {
        "flipped byte in payload": bytes(flipped),
        "truncated": data[: mid],
        "header only": data[:64],
        "empty file": b"",
        "garbage": b"not an npz file at all",
        "bad checksum header": b"0" * 64 + data[64:],
    }


@pytest.mark.parametrize("kind", list(_corruptions(b"x" * 200)))
def test_corrupted_entry_is_detected_deleted_and_recomputed(tmp_path, kind):
    cache = ArrayCache("ns", tmp_path)
    good = {"f": np.arange(50, dtype=np.float32), "g": np.eye(3)}
    cache.put("k" * 64, **good)
    (path,) = _entries(cache)
    path.write_bytes(_corruptions(path.read_bytes())[kind])
    assert cache.get("k" * 64) is None  # never returned
    assert not path.exists()  # and removed
    calls = []
    out = cache.get_or_compute("k" * 64, lambda: calls.append(1) or good)
    assert calls == [1]
    np.testing.assert_array_equal(out["f"], good["f"])
    # the recomputed entry is whole again and served from disk
    reread = ArrayCache("ns", tmp_path).get("k" * 64)
    assert reread is not None
    np.testing.assert_array_equal(reread["g"], good["g"])


def test_entry_with_valid_checksum_but_pickled_object_is_refused(tmp_path):
    """An entry that would need pickle (arbitrary code on load) is treated as corrupt, not loaded."""
    import io

    cache = ArrayCache("ns", tmp_path)
    buf = io.BytesIO()
    np.savez(buf, f=np.array([{"a": 1}], dtype=object))
    payload = buf.getvalue()
    path = cache._path("p" * 64)
    path.parent.mkdir(parents=True)
    path.write_bytes(cache_mod.digest_bytes(payload).encode() + payload)
    assert cache.get("p" * 64) is None
    assert not path.exists()


# ------------------------------------------------------------------------------------------ atomicity

class _Boom(Exception):
    pass


def test_atomic_write_interrupted_mid_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "record.json"
    atomic_write_bytes(target, b'{"old": true}')

    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes half the bytes, then fails as a full disk or a Ctrl-C would."""

        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
            return False

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise _Boom("disk full")

    monkeypatch.setattr(cache_mod.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(_Boom):
        atomic_write_bytes(target, b'{"new": "a much longer record that is only half written"}')
    assert target.read_bytes() == b'{"old": true}'
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]


def test_atomic_write_gives_the_usual_file_mode_not_mkstemps_private_one(tmp_path):
    reference = tmp_path / "plain.txt"
    reference.write_bytes(b"x")  # what open() gives under this process's umask
    target = tmp_path / "record.json"
    atomic_write_bytes(target, b"{}")
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == stat.S_IMODE(reference.stat().st_mode)
    assert mode & stat.S_IRGRP  # not mkstemp's 0600 (every umask in use leaves group read on)


@pytest.mark.parametrize("exc", [_Boom, KeyboardInterrupt])
def test_interrupted_rename_leaves_no_partial_entry(tmp_path, monkeypatch, exc):
    """An interrupt between the data write and the rename: no entry, no temporary file, next get() is a miss."""
    cache = ArrayCache("ns", tmp_path)

    def fail(*args, **kwargs):
        raise exc()

    monkeypatch.setattr(cache_mod.os, "replace", fail)
    with pytest.raises(exc):
        cache.put("a" * 64, f=np.ones(1000))
    monkeypatch.undo()
    assert _entries(cache) == []
    assert _leftovers(tmp_path) == []
    assert cache.get("a" * 64) is None
    cache.put("a" * 64, f=np.ones(1000))
    np.testing.assert_array_equal(cache.get("a" * 64)["f"], np.ones(1000))


def test_put_overwrites_atomically(tmp_path):
    cache = ArrayCache("ns", tmp_path)
    cache.put("b" * 64, f=np.zeros(3))
    cache.put("b" * 64, f=np.ones(3))
    np.testing.assert_array_equal(cache.get("b" * 64)["f"], np.ones(3))
    assert len(_entries(cache)) == 1 and _leftovers(tmp_path) == []
