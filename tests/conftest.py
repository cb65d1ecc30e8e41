"""Shared fixtures: a small synthetic dataset for most tests, the real data when present; inference on
TensorFlow unless a test picks its engine."""

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
    # Inference on TensorFlow: converting each test's freshly built model to ONNX would cost seconds per
    # test. tests/test_engines.py runs ONNX Runtime against it, and `skinbench smoke` runs every approach
    # on the default engine.
    monkeypatch.setenv("SKINBENCH_ENGINE", "tensorflow")


@pytest.fixture(autouse=True)
def _committed_tree(monkeypatch):
    """Tests see the code as committed, whatever the working tree holds: the records they make are not
    marked ``+dirty`` in their tables and may be written into $SKINBENCH_RESULTS (which stands for the
    repository's results/), also from a subprocess (``$SKINBENCH_ALLOW_DIRTY``, the escape regenerate gives
    the scripts it starts); the tests of the dirty-tree checks make it dirty again themselves."""
    monkeypatch.setattr("skinbench.environment.code_is_dirty", lambda: False)
    monkeypatch.setenv("SKINBENCH_ALLOW_DIRTY", "1")


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


@pytest.fixture(scope="session")
def mobilenet32_weights(tmp_path_factory):
    """A MobileNetV2 weights *file* (random values, 32 px): what is computed from it is cacheable like
    ImageNet-weight features, which random weights (``weights=None``) are not."""
    from skinbench.approaches import backbones

    path = tmp_path_factory.mktemp("w") / "mnet32.weights.h5"
    backbones.build("mobilenet_v2", (32, 32, 3), weights=None).save_weights(str(path))
    return path
