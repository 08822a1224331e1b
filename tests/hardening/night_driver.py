"""Run nights of the nightly flow's body inline (no Prefect server), for the SIGKILL trials.

    python -m tests.hardening.night_driver '{"settings": {...}, "nights": ["2026-06-17", ...]}'

Exit 0 when every night completed. Everything it writes goes through the same code as the
``amurwatch-nightly`` flow (``flows.nightly.run_night`` with ``inline=True``), under the run lock.
"""

from __future__ import annotations

import datetime as dt
import json
import sys


def main() -> int:
    from flows.nightly import run_lock, run_night
    from flows.settings import load_settings
    from outputs.alerts import AlertStore

    cfg = json.loads(sys.argv[1])
    settings = load_settings(None, **cfg["settings"])
    store = AlertStore(settings.state_url())
    try:
        with run_lock(store):
            print("ready", flush=True)  # imports done, lock held: the run proper starts
            for night in cfg["nights"]:
                s = run_night(settings, dt.date.fromisoformat(night), inline=True, report=True)
                if s.failed:
                    print(json.dumps(s.to_dict(), default=str), file=sys.stderr)
                    return 1
                print(f"night {night} done", flush=True)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
