"""Sweeps: tasks x approaches x seeds x a parameter grid, run as points on Dask distributed.

The one orchestrator of the suite: ``run``, ``smoke``, ``sweep`` and ``benchmarks/regenerate.py`` all
run their work as :class:`Point` s through :func:`run_sweep` (``--workers 0``: in this process, no
Dask), so there is one point executor (:func:`execute_point`) and one currency check
(:func:`skinbench.results.currency.check`, through :func:`point_status`) for all of them.

* :mod:`~skinbench.sweep.points`: what a sweep is. A sweep is data (:class:`SweepConfig`, from
  command-line arguments or a small TOML file); it expands to :class:`Point` s, each one
  :class:`~skinbench.provenance.RunSpec` with a stable id; :func:`registered_points` is what
  regenerate plans.
* :mod:`~skinbench.sweep.work`: the worker side, :func:`execute_point` (one point -> its records and
  figures, returned, not written) and the validation work.
* :mod:`~skinbench.sweep.engine`: the client side, :func:`run_sweep`. Before anything runs, every point
  is checked; a current point is skipped, so an interrupted sweep resumes where it stopped and a rerun
  of a finished one does no work (it does not even start a cluster when the client can read the data).
  Workers return the records and figures; the client writes them atomically under the results root,
  so results need no shared filesystem. Points are retried (``retries``; a user error is
  deterministic, so it is reported, not retried); the summary lists every failed point with a
  one-line cause.
* :mod:`~skinbench.sweep.command`: the ``sweep`` sub-command and the engine options.
* :mod:`~skinbench.sweep.regenerate`: ``benchmarks/regenerate.py``'s logic.

This package imports no Dask (nor TensorFlow) at import time: the CLI registers ``sweep`` cheaply, so
the runner, data and results modules are imported inside the functions that use them (start-up cost).
"""

from skinbench.sweep.command import (add_engine_options, add_parser, cmd_sweep, config_from_args,
                                     engine_options)
from skinbench.sweep.engine import (DEFAULT_RETRIES, DataRef, Summary, _client, default_workers, iter_records,
                                    land, point_status, run_sweep, validate_points)
from skinbench.sweep.points import (RUN_OPTIONS, WORKS, Point, SweepConfig, load_config, parse_grid, point_label,
                                    registered_points)
from skinbench.sweep.work import (THREAD_VARS, VALIDATION_FRACTION, PointResult, check_data_root,
                                  dataset_kwargs_for, execute_point, thread_env, validation_key, validation_path)

__all__ = ["DEFAULT_RETRIES", "RUN_OPTIONS", "THREAD_VARS", "VALIDATION_FRACTION", "WORKS", "DataRef", "Point",
           "PointResult", "Summary", "SweepConfig", "add_engine_options", "add_parser", "check_data_root",
           "cmd_sweep", "config_from_args", "dataset_kwargs_for", "default_workers", "engine_options",
           "execute_point", "iter_records", "land", "load_config", "parse_grid", "point_label", "point_status",
           "registered_points", "run_sweep", "thread_env", "validate_points", "validation_key", "validation_path"]
