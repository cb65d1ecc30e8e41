"""Write ``constraints.txt``: the exact versions of skinbench[test]'s dependency closure in this environment.

    python benchmarks/write_lock.py            # rewrite constraints.txt from what is installed here
    python benchmarks/write_lock.py --check    # exit 1 (and list them) where the installed versions differ

The lock pins what the committed records were made with, so a fresh ``pip install -c constraints.txt -e
".[test]"`` (the README's command, ``.ci/run``) gets the same OpenCV, TensorFlow and NumPy instead of
whatever resolves today; pyproject.toml's ranges stay loose for users. Records store the lock's digest
(``versions.lock``, :func:`skinbench.environment.lock_digest`) and ``regenerate.py`` warns when a package a
record names runs at another version than the lock's. pip, setuptools and wheel are left out, as
``pip freeze`` leaves them out: pinning the build tools would bind the build of the package itself.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without `pip install -e .`

from skinbench.environment import LOCK_FILE, canonical  # noqa: E402

#: never pinned (pip freeze leaves them out too)
BUILD_TOOLS = {"pip", "setuptools", "wheel"}
HEADER = ("# The exact versions the committed records are made with: skinbench[test]'s dependency closure,\n"
          "# written by `python benchmarks/write_lock.py` from the environment that made them. Install with\n"
          "#   pip install -c constraints.txt -e \".[test]\"\n"
          "# (pyproject.toml's ranges stay loose for users). Records store this file's digest (versions.lock).\n")


def closure(root: str = "skinbench", extras: frozenset[str] = frozenset({"test"})) -> dict[str, str]:
    """{canonical name: installed version} of every distribution ``root[extras]`` needs here (markers
    evaluated for this machine; an extra's requirements followed where a requirement names it)."""
    env = default_environment()
    seen: dict[str, set[str]] = {}
    stack: list[tuple[str, set[str]]] = [(root, set(extras))]
    while stack:
        name, want = stack.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = canonical(dist.metadata["Name"])
        if key in seen and want <= seen[key]:
            continue
        seen[key] = seen.get(key, set()) | want
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ["", *sorted(want)]):
                stack.append((req.name, set(req.extras)))
    return {k: metadata.version(k) for k in sorted(seen) if k != canonical(root) and k not in BUILD_TOOLS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    args = p.parse_args(argv)
    pins = closure()
    if args.check:
        from skinbench.environment import read_lock

        locked = read_lock()
        diff = [f"{k} {v} (lock {locked.get(k)})" for k, v in pins.items() if locked.get(k) != v]
        print("\n".join(diff) or "installed versions match the lock")
        return 1 if diff else 0
    text = HEADER + "".join(f"{k}=={v}\n" for k, v in pins.items())
    LOCK_FILE.write_text(text)
    print(f"wrote {LOCK_FILE} ({len(pins)} pins)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
