"""``python -m benchmarks``: a benchmark's options reach it (they were once dropped, silently)."""

import subprocess
import sys

import pytest

import benchmarks.__main__ as bm


@pytest.fixture
def calls(monkeypatch):
    import benchmarks.load
    import benchmarks.processors

    got = []
    monkeypatch.setattr(benchmarks.load, "main", lambda argv=None: got.append(("load", argv)))
    monkeypatch.setattr(benchmarks.processors, "main", lambda argv=None: got.append(("processors", argv)))
    return got


def test_options_after_a_name_reach_that_benchmark(calls):
    assert bm.main(["load", "--archive", "/data/a", "--repeat", "5"]) == 0
    assert calls == [("load", ["--archive", "/data/a", "--repeat", "5"])]


def test_names_alone_run_each_with_its_defaults(calls):
    assert bm.main(["load", "processors"]) == 0
    assert calls == [("load", []), ("processors", [])]


def test_an_unknown_name_or_options_without_a_name_run_nothing(calls, capsys):
    assert bm.main(["loads"]) == 2
    assert "unknown benchmark 'loads'" in capsys.readouterr().err
    assert bm.main(["--archive", "/data/a"]) == 2
    assert "name the benchmark before its options" in capsys.readouterr().err
    assert calls == []


def test_a_benchmark_help_lists_its_options():
    r = subprocess.run([sys.executable, "-m", "benchmarks", "load", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "--archive" in r.stdout and "--repeat" in r.stdout
