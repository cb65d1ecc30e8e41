"""Shared fixtures: a small synthetic dataset for most tests, the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path_factory, monkeypatch):
    """Tests never write into the committed results/ or the user's cache."""
    monkeypatch.setenv("SKINBENCH_RESULTS", str(tmp_path_factory.mktemp("results")))
    monkeypatch.setenv("SKINBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """A small, seeded synthetic dataset (images, labels, lesion/globule/streak masks)."""
    from skinbench.data import synthetic

    folder = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(folder, n_images=48, seed=0)
    return synthetic.load(folder)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip("real data ../shared/data not present")
    return SHARED_DATA
