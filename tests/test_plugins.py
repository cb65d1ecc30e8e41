"""Approach and dataset plugins (issue 34): entry points, ad hoc classes, broken plugins, marking in tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers_plugins import TINY_CLASSIFIER, WORKTREE, cli, install_fake, restore_registry

SYN = ["--dataset", "synthetic", "--n-boot", "30"]


@pytest.fixture(autouse=True)
def _suite_registry_after():
    yield from restore_registry()
GOOD_INIT = """
    from skinbench.info import ApproachInfo


    def approaches():
        return [ApproachInfo("mean-colour", "tiny_plugin.model:MeanColourClassifier", "classical", ("task1", "task2"),
                             "Mean colour + logistic regression", params={"C": 1.0})]
"""


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """One good plugin, one that fails to import, one whose entry point returns something malformed."""
    site = tmp_path / "site"
    install_fake(site, "tiny-plugin", "0.2.0", "tiny_plugin", {"__init__.py": GOOD_INIT, "model.py": TINY_CLASSIFIER},
                 {"skinbench.approaches": {"tiny": "tiny_plugin:approaches"}})
    install_fake(site, "broken-plugin", "1.0", "broken_plugin", {"__init__.py": "import no_such_module_xyz\n"},
                 {"skinbench.approaches": {"broken": "broken_plugin:approaches"}})
    install_fake(site, "odd-plugin", "0.0.1", "odd_plugin", {"__init__.py": "def approaches():\n    return 'hello'\n"},
                 {"skinbench.approaches": {"odd": "odd_plugin:approaches"}})
    clash = ("from skinbench.info import ApproachInfo\n"
             "approaches = [ApproachInfo('bovw', 'x.y:Z', 'classical', ('task1',), 'a second bovw')]\n")
    install_fake(site, "clash-plugin", "2.0", "clash_plugin", {"__init__.py": clash},
                 {"skinbench.approaches": {"clash": "clash_plugin:approaches"}})
    return site


def test_plugins_load_once_lazily_on_first_read_of_the_registry(site):
    code = ("import importlib.metadata as m; calls = []; real = m.entry_points\n"
            "m.entry_points = lambda **kw: calls.append(kw['group']) or real(**kw)\n"
            "from skinbench import info, cli, runner, params\n"
            "assert calls == [], calls\n"
            "assert info.APPROACHES['mean-colour'].origin == 'tiny-plugin 0.2.0' and 'bovw' in info.APPROACHES\n"
            "list(info.APPROACHES); info.approach('majority'); list(info.DATASETS.values())\n"
            "print(sorted(calls))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKTREE), str(site)])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['skinbench.approaches',", "'skinbench.datasets']"]


def test_plugins_listed_and_broken_ones_are_one_warning_line_each(site):
    done = cli("list", path=[site])
    assert done.returncode == 0, done.stderr
    assert "bovw" in done.stdout and "majority" in done.stdout  # the suite is intact
    line = next(l for l in done.stdout.splitlines() if l.startswith("mean-colour"))
    assert "[plugin: tiny-plugin 0.2.0]" in line and "classical" in line
    warnings = [l for l in done.stderr.splitlines() if l.strip()]
    assert len(warnings) == 3, done.stderr
    assert any("'broken-plugin'" in w and "ModuleNotFoundError" in w for w in warnings)
    assert any("'odd-plugin'" in w and "ApproachInfo" in w for w in warnings)
    assert any("'clash-plugin'" in w and "'bovw' is already taken" in w for w in warnings)
    assert "a second bovw" not in done.stdout
    one = cli("list", "mean-colour", path=[site])
    assert one.returncode == 0 and "plugin: tiny-plugin 0.2.0" in one.stdout
    rows = {l.split()[0]: l for l in one.stdout.splitlines() if l.strip()}
    assert "C" in rows and "size" in rows and "a number" in rows["C"] and "an integer" in rows["size"]


@pytest.mark.slow  # several CLI subprocesses: 10-20 s on 2 shared cores
def test_plugin_run_records_origin_key_seeds_and_marks_table(site, tmp_path):
    res = tmp_path / "res"
    bad = cli("run", "task1", "-a", "mean-colour", "-p", "C=abc", *SYN, "--results", str(res), path=[site])
    assert bad.returncode == 2 and "parameter C of approach 'mean-colour' takes a number" in bad.stderr
    assert not (res / "runs").exists()
    done = cli("run", "task1", "-a", "mean-colour", "--seed", "0", "1", *SYN, "--results", str(res), path=[site])
    assert done.returncode == 0, done.stderr
    rec = json.loads((res / "runs/task1/synthetic/mean-colour.json").read_text())
    assert rec["origin"] == "tiny-plugin 0.2.0" and rec["family"] == "classical"
    assert rec["key_inputs"]["versions"]["estimator"] == 3  # its declared algorithm_version
    assert rec["key_inputs"]["estimator"] == "tiny_plugin.model:MeanColourClassifier"
    assert (res / "runs/task1/synthetic/mean-colour__seed1.json").is_file()
    table = pd.read_csv(res / "tables/task1__synthetic.csv")
    row = table[table.approach == "mean-colour"].iloc[0]
    assert "plugin: tiny-plugin 0.2.0" in row.note and "ap_seed_mean" in table.columns
    suite = table[table.approach == "majority"].iloc[0]  # baselines ran beside it, unmarked
    assert not isinstance(suite.note, str) or "plugin" not in suite.note
    assert set(table.approach) >= {"majority", "stratified", "bovw"}  # suite rows listed, "not run" or not
    rerun = cli("table", "--results", str(res))  # without the plugin installed: still marked, from the record
    assert rerun.returncode == 0, rerun.stderr
    assert "plugin: tiny-plugin 0.2.0" in (res / "tables/task1__synthetic.md").read_text()
    dashboard = (res / "README.md").read_text()
    assert "## Significance: contributed approaches vs the suite" in dashboard
    assert "McNemar" in dashboard.split("contributed approaches vs the suite")[1]


@pytest.mark.slow  # several CLI subprocesses: 10-20 s on 2 shared cores
def test_adhoc_class_with_family(tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "tinymod.py").write_text(__import__("textwrap").dedent(TINY_CLASSIFIER))
    res = tmp_path / "res"
    spec = "tinymod:MeanColourClassifier"
    missing = cli("run", "task1", "-a", spec, *SYN, "--results", str(res), path=[mods])
    assert missing.returncode == 2 and "needs its family declared" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    typo = cli("run", "task1", "-a", "tinymod:NoSuchClass", "--family", "classical", *SYN, path=[mods])
    assert typo.returncode == 2 and "cannot import approach class 'tinymod:NoSuchClass'" in typo.stderr
    listed = cli("list", spec, "--family", "classical", path=[mods])
    assert listed.returncode == 0 and "mean-colour-classifier (classical)" in listed.stdout
    assert "plugin: tinymod (ad hoc)" in listed.stdout
    done = cli("run", "task1", "-a", spec, "--family", "classical", *SYN, "--results", str(res), path=[mods])
    assert done.returncode == 0, done.stderr
    rec = json.loads((res / "runs/task1/synthetic/mean-colour-classifier.json").read_text())
    assert rec["origin"] == "tinymod (ad hoc)" and rec["family"] == "classical"
    assert "plugin: tinymod (ad hoc)" in (res / "tables/task1__synthetic.md").read_text()


def test_adhoc_class_in_a_sweep_reaches_the_workers(tmp_path):
    """A sweep runs points in Dask worker processes: the ad hoc class is registered there too."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "tinymod.py").write_text(__import__("textwrap").dedent(TINY_CLASSIFIER))
    res = tmp_path / "res"
    done = cli("sweep", "task1", "-a", "tinymod:MeanColourClassifier", "--family", "classical", "-g", "C=0.1,10",
               "--workers", "1", *SYN, "--results", str(res), path=[mods])
    assert done.returncode == 0, done.stderr
    text = (res / "tables/sweeps/sweep__task1__synthetic.md").read_text()
    assert text.count("plugin: tinymod (ad hoc)") == 2


def test_plugin_signature_is_read_from_its_source_without_importing(tmp_path, monkeypatch):
    from skinbench import params

    (tmp_path / "srcmod_unimported.py").write_text(__import__("textwrap").dedent(TINY_CLASSIFIER))
    monkeypatch.syspath_prepend(str(tmp_path))
    sig = params.signature("srcmod_unimported:MeanColourClassifier")
    assert list(sig) == ["C", "size", "random_state"] and sig["C"].default == 1.0
    assert "srcmod_unimported" not in sys.modules


def test_plugin_source_enters_the_code_digest_not_the_run_key(tmp_path, monkeypatch):
    """A record's code_digest names the exact source that ran, a plugin's module included (provenance);
    its run key moves only with the declared algorithm_version."""
    from skinbench import plugins, provenance

    module = tmp_path / "digestmod.py"
    module.write_text(__import__("textwrap").dedent(TINY_CLASSIFIER))
    monkeypatch.syspath_prepend(str(tmp_path))
    name = plugins.register_class("digestmod:MeanColourClassifier", "classical")
    spec = provenance.RunSpec("task1", name, "synthetic")
    key, digest = provenance.run_key(provenance.key_inputs(spec, "m")), provenance.code_digest(name)
    assert module in provenance.approach_sources(name)
    module.write_text(module.read_text() + "\n# a comment\n")
    assert provenance.code_digest(name) != digest
    assert provenance.run_key(provenance.key_inputs(spec, "m")) == key
    sys.modules.pop("digestmod", None)


# ------------------------------------------------------------------------------------ dataset plugins
def _lab_dataset(tmp_path: Path) -> tuple[Path, Path]:
    """A lab's collection (generic layout) under <root>/labderm and a plugin registering it with a manifest."""
    from skinbench.cache import file_digest
    from skinbench.data import synthetic

    root = tmp_path / "data"
    folder = synthetic.generate(root / "labderm", n_images=40, seed=3)
    labels = pd.read_csv(folder / "labels.csv", dtype=str)
    manifest = labels[["image_id", "label", "lesion_id", "split"]].copy()
    manifest["sha256"] = [file_digest(folder / "images" / f"{i}.png") for i in manifest.image_id]
    site = tmp_path / "site"
    init = f"""
        from pathlib import Path

        from skinbench.info import DatasetInfo
        from skinbench.data.plugin_folder import load_folder


        def load(folder, **kwargs):
            return load_folder("labderm", folder, **kwargs)


        def datasets():
            return [DatasetInfo("labderm", "Our lab's dermoscopy", "labderm_plugin:load", "labderm", "our lab",
                                ("labels.csv", "images/"), class_names=("benign", "malignant"),
                                positive_class="malignant", tasks=("task1", "task4"),
                                manifest_path=str(Path(__file__).with_name("labderm.csv")))]
    """
    install_fake(site, "labderm-plugin", "1.2", "labderm_plugin", {"__init__.py": init},
                 {"skinbench.datasets": {"labderm": "labderm_plugin:datasets"}})
    manifest.to_csv(site / "labderm_plugin" / "labderm.csv", index=False)
    return root, site


@pytest.mark.slow  # several CLI subprocesses: 10-20 s on 2 shared cores
def test_dataset_plugin_verify_run_and_named_tables(tmp_path):
    root, site = _lab_dataset(tmp_path)
    listed = cli("list", path=[site])
    assert "[plugin: labderm-plugin 1.2]" in next(l for l in listed.stdout.splitlines() if l.startswith("labderm"))
    verified = cli("data", "verify", "labderm", "--data-root", str(root), path=[site])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "40" in verified.stdout
    res = tmp_path / "res"
    done = cli("run", "task1", "-a", "majority", "--dataset", "labderm", "--data-root", str(root), "--n-boot", "20",
               "--results", str(res), path=[site])
    assert done.returncode == 0, done.stderr
    rec = json.loads((res / "runs/task1/labderm/majority.json").read_text())
    assert rec["dataset"] == "labderm" and rec["key_inputs"]["dataset"] == "labderm"
    assert (res / "tables/task1__labderm.md").is_file()
    seg = cli("run", "task4", "-a", "ellipse", "--dataset", "labderm", "--data-root", str(root), "--n-boot", "20",
              "--results", str(res), path=[site])
    assert seg.returncode == 0, seg.stderr  # a plugin dataset with masks serves a segmentation task
    seg_rec = json.loads((res / "runs/task4/labderm/ellipse__lesion.json").read_text())
    assert seg_rec["dataset"] == "labderm" and 0 < seg_rec["metrics"]["jaccard_set"]["value"] < 1
    assert (res / "tables/task4__labderm__lesion.md").is_file()
    cross = cli("run", "task1", "-a", "majority", "--dataset", "labderm", "--data-root", str(root), "--n-boot", "20",
                "--test-dataset", "synthetic", "--results", str(res), path=[site])
    assert cross.returncode == 0, cross.stderr  # fit on the plugin dataset, scored on another
    crossed = list((res / "runs/task1").glob("labderm__on__*/majority.json"))
    assert len(crossed) == 1
    assert json.loads(crossed[0].read_text())["key_inputs"]["dataset"] == "labderm"
    wrong_task = cli("run", "task2", "-a", "majority", "--dataset", "labderm", "--data-root", str(root), path=[site])
    assert wrong_task.returncode == 2 and "does not serve task2" in wrong_task.stderr
    labels = pd.read_csv(root / "labderm/labels.csv", dtype=str)
    labels.loc[0, "label"] = "malignant" if labels.loc[0, "label"] == "benign" else "benign"
    labels.to_csv(root / "labderm/labels.csv", index=False)
    changed = cli("run", "task1", "-a", "majority", "--dataset", "labderm", "--data-root", str(root), path=[site])
    assert changed.returncode == 2 and "differ from the manifest" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    (root / "labderm/images" / f"{labels.image_id[1]}.png").write_bytes(b"not the image")
    broken = cli("data", "verify", "labderm", "--data-root", str(root), path=[site])
    assert broken.returncode == 1 and labels.image_id[1] in broken.stdout
