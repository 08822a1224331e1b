"""Run every benchmark, the ones named, or one with its options.

    python -m benchmarks                      # all of them, each with its defaults
    python -m benchmarks load processors      # the ones named, with their defaults
    python -m benchmarks load --archive DIR   # one benchmark; the options after its name are its own
"""

from __future__ import annotations

import importlib
import sys

ALL = ["archive", "load", "processors", "nightly", "layouts", "scale"]


def main(argv: list[str]) -> int:
    if any(a.startswith("-") for a in argv) and argv[0] not in ("-h", "--help"):
        if argv[0].startswith("-"):
            print(f"name the benchmark before its options, e.g. python -m benchmarks load {' '.join(argv)}; "
                  f"choose from {ALL}", file=sys.stderr)
            return 2
        runs = [(argv[0], argv[1:])]  # options belong to the one benchmark named
    elif argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip() + f"\n\nbenchmarks: {', '.join(ALL)}; `python -m benchmarks NAME --help` for one's options")
        return 0
    else:
        runs = [(name, []) for name in (argv or ALL)]
    for name, _ in runs:
        if name not in ALL:
            print(f"unknown benchmark {name!r}; choose from {ALL}", file=sys.stderr)
            return 2
    for name, opts in runs:
        importlib.import_module(f"benchmarks.{name}").main(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
