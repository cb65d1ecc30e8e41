"""`-p` parameters against the estimators' signatures, and the registry's smoke settings."""

from __future__ import annotations

import pytest

from skinbench import info
from skinbench.errors import ConfigError
from skinbench.params import approach_signature, validate_params


def test_text_values_are_typed_by_the_signature():
    got = validate_params("bovw", "task1", {"n_words": "50", "C": "none", "C_grid": "0.1,1", "progress": "false",
                                            "dense_sizes": "[16,24]", "detector": "dense"})
    assert got == {"n_words": 50, "C": None, "C_grid": [0.1, 1.0], "progress": False, "dense_sizes": [16, 24],
                   "detector": "dense"}
    assert validate_params("bovw", "task1", got) == got  # idempotent: the runner may check again
    assert validate_params("transfer-mobilenetv2", "task1", {"weights": "null"}) == {"weights": None}
    assert validate_params("unet", "task4", {"learning_rate": 1}) == {"learning_rate": 1.0}


@pytest.mark.parametrize("approach, params, needle", [
    ("bovw", {"n_words": "abc"}, "takes an integer, not 'abc'"),
    ("bovw", {"n_words": "3.5"}, "takes an integer"),
    ("bovw", {"rootsift": "maybe"}, "takes true or false"),
    ("unet", {"epochs": "abc"}, "Fix: e.g. -p epochs=20"),  # task3's registered value
    ("classical-dots", {"n_tune": "abc"}, "Fix: e.g. -p n_tune=400"),
    ("bovw", {"n_words": True}, "takes an integer"),
    ("bovw", {"vocab_size": 500}, "did you mean n_words?"),
])
def test_wrong_types_and_names_are_one_line(approach, params, needle):
    with pytest.raises(ConfigError) as err:
        validate_params(approach, info.approach(approach).tasks[0], params)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_every_registered_value_fits_its_estimator():
    for a in info.APPROACHES.values():
        for task in a.tasks:
            validate_params(a, task, a.params_for(task))
            validate_params(a, task, a.smoke_params)


def test_smoke_overrides_every_epoch_like_parameter():
    """`skinbench smoke` is seconds per approach: every parameter named like epochs (task_params included)
    and every training schedule (``stages``) is overridden to at most 2 epochs."""
    for a in info.APPROACHES.values():
        sig = approach_signature(a)
        for task in a.tasks:
            merged = {**{k: p.default for k, p in sig.items()}, **a.params_for(task), **a.smoke_params}
            for name, value in merged.items():
                if "epoch" in name:
                    assert value is not None and value <= 2, f"{a.name}/{task}: {name}={value} in smoke"
            if "stages" in sig:
                assert "stages" in a.smoke_params, f"{a.name}: its default schedule trains up to 100 epochs"
                assert all(int(epochs) <= 2 for _, _, epochs in a.smoke_params["stages"])


def test_declared_values_read_from_source_equal_the_classes_own():
    """params.allowed_values reads each estimator's ``_allowed`` (and its bases') from source, without
    importing it; what fit checks at run time (approaches.base.allowed) must be the very same sets."""
    import importlib

    from skinbench.approaches.base import allowed
    from skinbench.params import allowed_values

    for a in info.APPROACHES.values():
        module, cls = a.estimator.split(":")
        runtime = {k: tuple(v) for k, v in allowed(getattr(importlib.import_module(module), cls)).items()}
        assert allowed_values(a.estimator) == runtime, a.name
        sig = approach_signature(a)
        assert set(runtime) <= set(sig), f"{a.name}: declares values of parameters it does not take"
        for task in a.tasks:  # every registered and default value is one of the declared
            merged = {**{k: p.default for k, p in sig.items()}, **a.params_for(task), **a.smoke_params}
            for name, choices in runtime.items():
                assert merged[name] in choices, f"{a.name}/{task}: {name}={merged[name]!r}"
