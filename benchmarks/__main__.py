"""Run every benchmark (or the ones named): ``python -m benchmarks [archive ...]``."""

from __future__ import annotations

import importlib
import sys

ALL = ["archive", "load", "processors", "nightly", "layouts", "scale"]


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")][:1] if any(a.startswith("-") for a in argv) else argv
    names = names or ALL  # options (``nightly --out DIR``) belong to the one benchmark named
    for name in names:
        if name not in ALL:
            print(f"unknown benchmark {name!r}; choose from {ALL}", file=sys.stderr)
            return 2
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
