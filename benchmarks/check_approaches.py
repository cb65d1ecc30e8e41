"""Every registered approach through ``skinbench.testing.check_approach`` (the estimator contract on
synthetic data), the deep ones included: the test suite runs the cheap ones, this runs all (about 6 minutes
on 2 cores). Writes nothing; exit 1 when any fails.

    python benchmarks/check_approaches.py [--approach NAME ...]
"""

from __future__ import annotations

import argparse
import sys

from skinbench.testing import check_all


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--approach", action="append", help="only these approaches (repeatable)")
    args = p.parse_args(argv)
    return 0 if check_all(args.approach) else 1


if __name__ == "__main__":
    sys.exit(main())
