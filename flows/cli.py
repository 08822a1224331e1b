"""The ``amurwatch`` command line.

Exit codes: 0 success; 1 the work failed; 2 bad input (usage, an invalid AOI file, a bad path);
130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from aoi import AoiValidationError, load_landscapes
from aoi.errors import AmurwatchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="amurwatch: satellite monitoring of the Amur-Heilong ecoregion.")
aoi_app = typer.Typer(no_args_is_help=True, help="Conservation landscapes (AOI files).")
stac_app = typer.Typer(no_args_is_help=True, help="The local STAC API.")
demo_app = typer.Typer(help="The offline demo on the embedded synthetic archive.", invoke_without_command=True)
app.add_typer(aoi_app, name="aoi")
app.add_typer(stac_app, name="stac")
app.add_typer(demo_app, name="demo")

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)


# ------------------------------------------------------------------------------------------- aoi
@aoi_app.command("validate")
def aoi_validate(
    file: Path = typer.Argument(..., help="GeoJSON FeatureCollection of landscapes (EPSG:4326)."),
    resolution: float = typer.Option(10.0, help="Grid resolution in metres used for the summary."),
    max_area_km2: float = typer.Option(250_000.0, help="Reject landscapes larger than this (km²)."),
) -> None:
    """Validate an AOI file; list every problem at once, or summarise the landscapes and their grids."""
    try:
        landscapes = load_landscapes(file, max_area_km2=max_area_km2)
    except AoiValidationError as exc:
        err.print(f"[red]invalid[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT)
    t = Table(title=f"{file}: {len(landscapes)} landscapes, valid")
    for col in ("id", "name", "country", "ecosystems", "area km²", "grid CRS", f"grid @ {resolution:g} m", "managers"):
        t.add_column(col)
    for ls in landscapes:
        g = ls.grid(resolution)
        t.add_row(ls.id, ls.name, "/".join(ls.country), ", ".join(e.value for e in ls.ecosystems),
                  f"{ls.area_km2:,.0f}", f"EPSG:{g.epsg}", f"{g.height} x {g.width}", str(len(ls.managers)))
    console.print(t)


# ------------------------------------------------------------------------------------------- stac
@stac_app.command("serve")
def stac_serve(
    archive: Path = typer.Argument(..., help="Folder with a static STAC catalog.json (e.g. the demo archive)."),
    port: int = typer.Option(7822, help="Port on 127.0.0.1 (0 picks a free one)."),
) -> None:
    """Serve an archive's collections and items over a STAC API on loopback until Ctrl-C."""
    from demo.server import StacServer

    stop = threading.Event()
    # SIGTERM and Ctrl-C only set a flag: an exception raised at an arbitrary point could escape
    # half-way through start-up and leave rustac running
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    srv = StacServer(archive, port=port or None)
    try:
        try:
            srv.start()
        except AmurwatchError as exc:
            err.print(f"[red]error[/red] {exc}")
            raise typer.Exit(EXIT_BAD_INPUT)
        if not stop.is_set():
            console.print(f"STAC API on [bold]{srv.url}[/bold] serving {srv.n_items} items from {archive} "
                          "(Ctrl-C stops it)")
        while not stop.is_set():
            if not srv.is_running():
                err.print("[red]the STAC server stopped unexpectedly[/red]")
                raise typer.Exit(EXIT_FAILED)
            stop.wait(0.5)
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------- demo
def _generate(archive: Path, seed: int, size: str, overwrite: bool) -> None:
    from demo.generate import generate_archive

    with _progress() as prog:
        task = prog.add_task(f"generating demo archive ({size})", total=None)
        s = generate_archive(archive, seed=seed, size=size, overwrite=overwrite,
                             progress=lambda done, total: prog.update(task, completed=done, total=total))
    console.print(f"archive: {s.root}  items: {s.n_items}  files: {s.n_files}  "
                  f"size: {s.bytes / 1e6:.0f} MB  in {s.seconds:.1f} s")


@demo_app.command("generate")
def demo_generate(
    archive: Path = typer.Argument(Path("demo-output/archive"), help="Where to write the archive."),
    seed: int = typer.Option(42, help="Scenario seed; the same seed gives a byte-identical archive."),
    size: str = typer.Option("default", help="default (3 windows of 4 km) or small (for tests)."),
    overwrite: bool = typer.Option(False, help="Replace an existing demo archive."),
) -> None:
    """Generate the synthetic Sentinel-2 / Landsat archive and its ground truth."""
    try:
        _generate(archive, seed, size, overwrite)
    except (AmurwatchError, ValueError) as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT)


def _detected(res: dict) -> str:
    """``8/9``, naming the misses under the 0.5 ha target (they do not fail it)."""
    under = res["events_missed"] - res["events_missed_over_mmu"]
    return f"{res['events_detected']}/{res['events']}" + (f" ({under} missed < 0.5 ha)" if under else "")


@demo_app.callback()
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo-output"), help="Output folder; the archive goes to OUT/archive."),
    seed: int = typer.Option(42, help="Scenario seed."),
    size: str = typer.Option("default", help="default or small."),
    fresh: bool = typer.Option(True, help="Start the outputs from scratch (the archive is kept)."),
    every_days: int = typer.Option(1, min=1, help="Replay every acquisition night (1), or one night every N days "
                                                  "(each still sees only the scenes acquired up to it)."),
) -> None:
    """Run the whole job offline: generate the archive if missing, serve it over a local STAC API,
    backfill the baseline, replay the monitoring season night by night, write cubes, alerts,
    stats and reports, mail the digests to a local SMTP server (OUT/mail), and score the outputs."""
    if ctx.invoked_subcommand is not None:
        return
    import shutil
    import time

    from demo.mailserver import MailCatcher
    from demo.server import serve_archive
    from flows.demo import demo_flow
    from flows.evaluate import evaluate_outputs

    archive = out / "archive"
    t0 = time.perf_counter()
    try:
        if not (archive / "manifest.json").exists():
            _generate(archive, seed, size, overwrite=True)
        else:
            console.print(f"using existing archive {archive} (delete it to regenerate)")
        if fresh:
            for name in ("cubes", "reports", "stac", "mail", "outbox"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in ("state.db", "state.db-wal", "state.db-shm", "alerts.parquet", "alerts.geojson",
                         "stats.parquet"):
                (out / name).unlink(missing_ok=True)
        landscapes = load_landscapes(archive / "aoi.geojson")
        with serve_archive(archive) as api, MailCatcher(out / "mail") as mail, _progress() as prog:
            console.print(f"local STAC API: {api.url} ({api.n_items} items); local SMTP server: 127.0.0.1:{mail.port}")
            task = prog.add_task("demo", total=None)

            def step(label: str, k: int, n: int) -> None:
                prog.update(task, total=n, completed=k, description=label)

            res = demo_flow(str(archive), str(out), api.url, mail.port, every_days=every_days, progress=step)
            mails = list(mail.received)
        scores = evaluate_outputs(archive, out)
    except AoiValidationError as exc:
        err.print(f"[red]invalid[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT)
    except AmurwatchError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(EXIT_FAILED)
    total = time.perf_counter() - t0
    last = res["last"] or {"landscapes": {}, "paths": {}}
    t = Table(title=f"amurwatch demo: {len(landscapes)} landscapes, {len(res['nights'])} nights replayed")
    for c in ("landscape", "alerts", "confirmed", "mails"):
        t.add_column(c)
    import geopandas as gpd

    alerts = gpd.read_parquet(out / "alerts.parquet")
    for land in landscapes:
        a = alerts[alerts.landscape_id == land.id]
        t.add_row(land.id, str(len(a)), str(int((a.status == "confirmed").sum())),
                  str(sum(1 for m in mails if land.id in m.name)))
    console.print(t)
    p = Table(title="outputs")
    p.add_column("what")
    p.add_column("where")
    for k, v in [("cubes", out / "cubes"), ("alerts (GeoParquet)", out / "alerts.parquet"),
                 ("alerts (GeoJSON)", out / "alerts.geojson"), ("stats", out / "stats.parquet"),
                 ("report", last["paths"].get("report", "")), ("STAC catalog", out / "stac" / "catalog.json"),
                 ("mails received by the local SMTP server", out / "mail"), ("state (SQLite)", out / "state.db")]:
        p.add_row(k, str(v))
    console.print(p)
    s = Table(title="scores of the outputs against the archive's truth (processing-core targets)")
    for c in ("target", "value", "met"):
        s.add_column(c)
    values = {"events_detected": _detected(scores),
              "distractor_alerts": scores["distractor_alerts"],
              "false_alarm_ha_per_100km2": scores["false_alarm_ha_per_100km2"],
              "area_within_20pct": scores["area_within_20pct"],
              "forest_latency_clear_obs": scores["forest_latency_max_clear_obs"],
              "burn_severity_agreement": scores["burn_severity_agreement"],
              "wetland_extent_error": scores["wetland_extent_error"],
              "grassland_agreement": scores["grassland_agreement"]}
    for k, v in scores["targets"].items():
        s.add_row(v["target"], str(values[k]), "[green]yes[/green]" if v["met"] else "[red]NO[/red]")
    console.print(s)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo-summary.json").write_text(json.dumps({"timings": {**res["timings"], "total_s": round(total, 1)},
                                                       "nights": res["nights"], "scores": scores,
                                                       "mails": [str(m) for m in mails]}, indent=1, default=str))
    console.print(f"demo finished in {total:.0f} s (backfill {res['timings'].get('backfill_s')} s, replay "
                  f"{res['timings'].get('replay_s')} s); summary: {out / 'demo-summary.json'}")


# ----------------------------------------------------------------------------------- run, backfill
def _settings(config: Optional[Path], *, out: Optional[str] = None, stac: Optional[list[str]] = None,
              collections: Optional[list[str]] = None, max_cloud: Optional[float] = None,
              aoi: Optional[Path] = None, landscape: Optional[list[str]] = None,
              mail_dry_run: Optional[bool] = None):
    from flows.settings import SettingsError, load_settings

    over: dict = {"out": out, "aoi": aoi, "landscapes": landscape or None,
                  "mail_dry_run": mail_dry_run if mail_dry_run else None}
    if stac:
        over["sources"] = [{"url": u, "collections": collections or None,
                            **({"max_cloud": max_cloud} if max_cloud is not None else {})} for u in stac]
    try:
        return load_settings(config, **over)
    except SettingsError as exc:
        err.print(f"[red]invalid settings[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT)


def _date(value: str, name: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        err.print(f"[red]error[/red] {name} {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-06-01")
        raise typer.Exit(EXIT_BAD_INPUT)


def _date_range(start: str, end: str):
    s, e = _date(start, "--start"), _date(end, "--end")
    if e < s:
        err.print(f"[red]error[/red] --start {s} is after --end {e}; swap them")
        raise typer.Exit(EXIT_BAD_INPUT)
    return s, e


def _print_summary(summary: dict) -> None:
    t = Table(title=f"amurwatch {summary['kind']} {summary['night']}")
    for c in ("landscape", "status", "scenes found", "slices written", "new", "updated", "confirmed", "error"):
        t.add_column(c)
    for lid, rec in summary["landscapes"].items():
        up = (rec.get("alerts") or {}).get("upsert", {})
        t.add_row(lid, "[green]ok[/green]" if rec["status"] == "ok" else "[red]failed[/red]",
                  str(rec.get("scenes_found", "")), str(rec.get("scenes", "")), str(up.get("new", "")),
                  str(up.get("updated", "")), str(up.get("confirmed", "")), rec.get("error", ""))
    console.print(t)
    for k, v in summary.get("paths", {}).items():
        console.print(f"{k}: {v}")
    mail = summary.get("mail") or {}
    if mail.get("failed"):
        err.print(f"[yellow]mail not sent (stays pending for the next run)[/yellow]: {mail['failed']}")


def _run_flow(kind: str, settings, start, end, notify: bool) -> None:
    from flows.nightly import RunLockedError, run_lock, run_range
    from flows.cluster import dask_client
    from outputs.alerts import AlertStore

    from prefect import flow

    @flow(name=f"amurwatch-{kind}-cli", log_prints=True)
    def _cli_flow() -> dict:
        store = AlertStore(settings.state_url())
        try:
            with run_lock(store), dask_client(settings.dask), _progress() as prog:
                task = prog.add_task(f"{kind}: monthly chunks", total=None)

                def step(label, k, n):
                    prog.update(task, total=n, completed=k, description=f"{kind}: {label}")

                return run_range(settings, start, end, notify=notify, progress=step).to_dict()
        finally:
            store.close()

    try:
        summary = _cli_flow()
    except RunLockedError as exc:
        err.print(f"[red]locked[/red] {exc}")
        raise typer.Exit(EXIT_FAILED)
    except AmurwatchError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT)
    _print_summary(summary)
    if summary["failed"]:
        err.print(f"[red]{len(summary['failed'])} landscape(s) failed[/red]: {', '.join(summary['failed'])}; "
                  "the others completed")
        raise typer.Exit(EXIT_FAILED)


@app.command("run")
def run(
    stac: list[str] = typer.Option(None, "--stac", help="STAC API URL, catalog.json or ItemCollection file (repeatable)."),
    aoi: Optional[Path] = typer.Option(None, help="AOI file (GeoJSON); default: the packaged landscapes."),
    start: str = typer.Option(..., help="First day, YYYY-MM-DD."),
    end: str = typer.Option(..., help="Last day, YYYY-MM-DD."),
    out: Optional[str] = typer.Option(None, help="Output folder or URL."),
    config: Optional[Path] = typer.Option(None, help="Settings file (TOML or YAML)."),
    collections: list[str] = typer.Option(None, "--collection", help="Collections to search (repeatable)."),
    max_cloud: Optional[float] = typer.Option(None, help="Drop scenes above this eo:cloud_cover."),
    landscape: list[str] = typer.Option(None, "--landscape", help="Only these landscape ids (repeatable)."),
    mail_dry_run: bool = typer.Option(False, help="Write the digests to OUT/outbox/*.eml instead of sending."),
) -> None:
    """Process [start, end] for every landscape: cubes, alerts, stats, report, STAC record, digests."""
    s, e = _date_range(start, end)
    settings = _settings(config, out=out, stac=stac, collections=collections, max_cloud=max_cloud, aoi=aoi,
                         landscape=landscape, mail_dry_run=mail_dry_run)
    _run_flow("run", settings, s, e, notify=True)


@app.command("backfill")
def backfill_cmd(
    start: str = typer.Option(..., help="First day, YYYY-MM-DD."),
    end: str = typer.Option(..., help="Last day, YYYY-MM-DD."),
    config: Optional[Path] = typer.Option(None, help="Settings file (TOML or YAML)."),
    stac: list[str] = typer.Option(None, "--stac", help="Override the sources (repeatable)."),
    out: Optional[str] = typer.Option(None, help="Override the output folder."),
    aoi: Optional[Path] = typer.Option(None, help="Override the AOI file."),
    landscape: list[str] = typer.Option(None, "--landscape", help="Only these landscape ids (repeatable)."),
    notify: bool = typer.Option(False, help="Mail the alerts the backfill finds."),
) -> None:
    """Ingest a date range in monthly chunks (resumable: rerun to continue), build the baselines."""
    s, e = _date_range(start, end)
    settings = _settings(config, out=out, stac=stac, aoi=aoi, landscape=landscape)
    _run_flow("backfill", settings, s, e, notify=notify)


alerts_app = typer.Typer(no_args_is_help=True, help="The alert store of an output folder.")
app.add_typer(alerts_app, name="alerts")


def _store(out: Path):
    from outputs.alerts import AlertStore

    if not (out / "state.db").exists():
        err.print(f"[red]error[/red] {out} has no state.db; point --out at a folder written by amurwatch run")
        raise typer.Exit(EXIT_BAD_INPUT)
    return AlertStore.at(out)


@alerts_app.command("list")
def alerts_list(
    out: Path = typer.Option(Path("amurwatch-output"), help="Output folder."),
    landscape: Optional[str] = typer.Option(None, help="Only this landscape."),
    status: list[str] = typer.Option(None, "--status", help="Only these statuses (repeatable)."),
    kind: Optional[str] = typer.Option(None, help="Only this kind."),
) -> None:
    """List the alerts, newest first."""
    store = _store(out)
    f = store.frame(landscape_id=landscape, statuses=status or None)
    if kind:
        f = f[f["kind"] == kind]
    t = Table(title=f"{len(f)} alerts in {out}")
    for c in ("alert_id", "landscape", "kind", "status", "first detected", "ha", "severity", "lon, lat"):
        t.add_column(c)
    for r in f.sort_values(["first_detected", "alert_id"], ascending=[False, True]).itertuples():
        t.add_row(r.alert_id, r.landscape_id, r.kind, r.status, str(r.first_detected), f"{r.area_ha:.2f}",
                  r.severity or "", f"{r.centroid_lon:.5f}, {r.centroid_lat:.5f}" if r.centroid_lon == r.centroid_lon else "")
    console.print(t)


@alerts_app.command("export")
def alerts_export(
    out: Path = typer.Option(Path("amurwatch-output"), help="Output folder."),
    to: Optional[Path] = typer.Option(None, help="Write here instead (.parquet, .geojson, .gpkg or .csv)."),
) -> None:
    """Export the alert store: OUT/alerts.parquet and OUT/alerts.geojson, or one file with --to."""
    store = _store(out)
    if to is None:
        paths = store.export(out)
        console.print(f"wrote {paths['parquet']} and {paths['geojson']}")
        return
    f = store.frame()
    suffix = to.suffix.lower()
    if suffix == ".parquet":
        f.to_parquet(to, index=False)
    elif suffix in (".geojson", ".json"):
        f.assign(**{c: f[c].astype(str) for c in ("first_detected", "last_seen", "confirmed_on", "expired_on")}
                 ).to_file(to, driver="GeoJSON")
    elif suffix == ".gpkg":
        f.assign(**{c: f[c].astype(str) for c in ("first_detected", "last_seen", "confirmed_on", "expired_on")}
                 ).to_file(to, driver="GPKG", layer="alerts")
    elif suffix == ".csv":
        f.assign(wkt=f.geometry.to_wkt()).drop(columns="geometry").to_csv(to, index=False)
    else:
        err.print(f"[red]error[/red] --to {to}: unknown format {suffix!r}; use .parquet, .geojson, .gpkg or .csv")
        raise typer.Exit(EXIT_BAD_INPUT)
    console.print(f"wrote {len(f)} alerts to {to}")


@app.command("evaluate")
def evaluate(
    archive: Path = typer.Argument(..., help="A demo archive with truth/ (e.g. demo-output/archive)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full results here (JSON)."),
    outputs: Optional[Path] = typer.Option(
        None, "--outputs", help="Score what a run wrote to this folder (alerts.parquet, cubes/) instead of "
                                "running the chain (e.g. demo-output, after make demo)."),
) -> None:
    """Run the processing chain on an archive and score it against its truth (targets of the processing core).

    With --outputs, score a run's outputs (its confirmed alerts and the cubes' annual layers) instead.
    Exit code 0 when every target is met, 1 when one is not, 2 on bad input.
    """
    from flows.evaluate import evaluate_archive, evaluate_outputs

    if not (archive / "truth" / "truth.json").exists():
        err.print(f"[red]error[/red] {archive} has no truth/truth.json; evaluate a demo archive "
                  "(amurwatch demo generate DIR)")
        raise typer.Exit(EXIT_BAD_INPUT)
    if outputs is not None:
        if not (outputs / "alerts.parquet").exists() or not (outputs / "cubes").is_dir():
            err.print(f"[red]error[/red] {outputs} holds no run outputs (alerts.parquet and cubes/); pass the "
                      "folder given to `amurwatch run --out`, or demo-output after make demo")
            raise typer.Exit(EXIT_BAD_INPUT)
        res = evaluate_outputs(archive, outputs)
    else:
        with _progress() as prog:
            task = prog.add_task("evaluating landscapes", total=len(load_landscapes(archive / "aoi.geojson")))
            res = evaluate_archive(archive, progress=lambda lid: prog.update(task, advance=1,
                                                                             description=f"evaluating {lid}"))
    t = Table(title=f"amurwatch evaluate {archive}" + (f" --outputs {outputs}" if outputs is not None else ""))
    for c in ("event", "kind", "truth ha", "detected", "area ratio", "latency"):
        t.add_column(c)
    for e in res["per_event"]:
        if e["kind"] == "distractor":
            t.add_row(e["id"], f"distractor: {e['distractor']}", "", "no alert" if e["alerts"] == 0 else f"{e['alerts']} ALERTS", "", "")
        else:
            lat = f"{e['latency_days']} d / {e['latency_clear_obs']} clear" if "latency_days" in e else ""
            t.add_row(e["id"], e["kind"], f"{e['area_ha']:.2f}", "yes" if e["detected"] else "MISSED",
                      f"{e['area_ratio']:.2f}" if e["area_ratio"] is not None else "", lat)
    console.print(t)
    s = Table(title="scores against the processing-core targets")
    for c in ("target", "value", "met"):
        s.add_column(c)
    values = {"events_detected": _detected(res), "distractor_alerts": res["distractor_alerts"],
              "false_alarm_ha_per_100km2": res["false_alarm_ha_per_100km2"], "area_within_20pct": res["area_within_20pct"],
              "forest_latency_clear_obs": res["forest_latency_max_clear_obs"],
              "burn_severity_agreement": res["burn_severity_agreement"], "wetland_extent_error": res["wetland_extent_error"],
              "grassland_agreement": res["grassland_agreement"]}
    for k, v in res["targets"].items():
        s.add_row(v["target"], str(values[k]), "[green]yes[/green]" if v["met"] else "[red]NO[/red]")
    s.add_row("wetland period extent error (Jul-Sep, wet in half the clear looks)", str(res["wetland_period_error"]), "")
    s.add_row("NDVI RMSE (truly clear pixels)", str(res["ndvi_rmse"]), "")
    s.add_row("cloud leak (cloudy pixels left non-NaN)", str(res["cloud_leak"]), "")
    console.print(s)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(res, indent=1, default=str))
        console.print(f"wrote {json_out}")
    raise typer.Exit(0 if all(v["met"] for v in res["targets"].values()) else EXIT_FAILED)


def main() -> None:
    import logging
    import os

    # a clean terminal: progress bars and tables, warnings and errors only from the libraries
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry
    # the ephemeral Prefect server gets 20 s to start by default: too few on a loaded 2-core machine
    # (seen in the test suite: "Timed out while attempting to connect to ephemeral Prefect API server")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
