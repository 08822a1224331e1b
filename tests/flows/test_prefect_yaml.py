"""prefect.yaml, read by Prefect's own loader: two deployments, their entrypoints import, the nightly schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import io
from pathlib import Path

import yaml
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_loads_with_prefects_loader_and_every_entrypoint_imports():
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(raw)  # strict: raises on any invalid field
    buf = io.StringIO()
    configs, actions = _load_deploy_configs_and_actions(ROOT / "prefect.yaml", console=Console(file=buf))
    assert buf.getvalue() == "", buf.getvalue()  # the loader complains on this console
    by_name = {c["name"]: c for c in configs}
    assert set(by_name) == {"amurwatch-nightly", "amurwatch-backfill"}
    for c in configs:
        path, func = c["entrypoint"].split(":")
        mod = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(mod, func)
        assert hasattr(flow, "deploy"), f"{c['entrypoint']} is not a Prefect flow"
        assert c["work_pool"]["name"] == "amurwatch-process"
        assert set(c["parameters"]) <= set(flow.parameters.properties), c["parameters"]
    assert flow.name in ("amurwatch-nightly", "amurwatch-backfill")
    assert actions["pull"][0]["prefect.deployments.steps.set_working_directory"]
    # the shared anchors produced the same pool for both
    assert by_name["amurwatch-nightly"]["work_pool"] == by_name["amurwatch-backfill"]["work_pool"]


def test_nightly_runs_at_two_in_the_morning_china_time_and_backfill_on_demand():
    from prefect.server.schemas.schedules import CronSchedule

    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    dep = {d["name"]: d for d in raw["deployments"]}
    (sched,) = dep["amurwatch-nightly"]["schedules"]
    assert sched["cron"] == "0 2 * * *" and sched["timezone"] == "Asia/Shanghai" and sched["active"]
    cron = CronSchedule(cron=sched["cron"], timezone=sched["timezone"])
    nxt = cron.get_dates(n=2, start=dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc))
    if asyncio.iscoroutine(nxt):
        nxt = asyncio.run(nxt)
    assert [d.astimezone(dt.timezone.utc) for d in nxt] == [
        dt.datetime(2026, 6, 1, 18, 0, tzinfo=dt.timezone.utc),  # 02:00 CST is 18:00 UTC the day before
        dt.datetime(2026, 6, 2, 18, 0, tzinfo=dt.timezone.utc)]
    assert dep["amurwatch-backfill"]["schedules"] == []
