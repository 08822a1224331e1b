"""One validated settings model: a TOML or YAML file, then ``AMURWATCH_*`` environment variables,
then command-line overrides (each wins over the one before).

Nested keys in the environment use ``__``: ``AMURWATCH_SMTP__HOST=mail.example.org``,
``AMURWATCH_THRESHOLDS__FOREST_NBR_DROP=0.25``. An unknown key or a bad value is an error that
names the key, the value and where it came from; every problem is reported at once.
"""

from __future__ import annotations

import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from aoi.errors import AmurwatchError
from outputs.notify import SmtpSettings
from processors.chain import ChainThresholds

__all__ = ["Settings", "SourceConfig", "EarthEngineConfig", "ThresholdSettings", "DaskSettings", "SettingsError", "load_settings",
           "EARTH_SEARCH", "PLANETARY_COMPUTER"]

EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"


class SettingsError(AmurwatchError):
    """The settings are invalid; the message lists every problem."""


class SourceConfig(BaseModel):
    """One imagery source: a STAC API URL, a static ``catalog.json`` or an ItemCollection file."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    collections: list[str] | None = None  #: None: every collection the profiles know
    max_cloud: float = Field(80.0, ge=0, le=100)  #: eo:cloud_cover filter, applied on the client side


EE_DEFAULT_COLLECTIONS = ["COPERNICUS/S2_SR_HARMONIZED", "LANDSAT/LC08/C02/T1_L2", "LANDSAT/LC09/C02/T1_L2"]


class EarthEngineConfig(BaseModel):
    """Google Earth Engine as a source of the flows, beside (or instead of) the STAC sources.

    ``earthengine = true`` is short for ``[earthengine] enabled = true``. The service-account key is
    read from the file named by ``$AMURWATCH_EE_KEY``, never from the settings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    collections: list[str] = Field(default_factory=lambda: list(EE_DEFAULT_COLLECTIONS))
    max_cloud: float = Field(80.0, ge=0, le=100)  #: scene cloud cover filter, applied by Earth Engine
    project: str | None = None  #: Google Cloud project billed; None: the key's project_id

    @field_validator("collections")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in EE_DEFAULT_COLLECTIONS]
        if bad or not v:
            raise ValueError(f"Earth Engine collection(s) {bad or v} are not supported; use some of "
                             f"{EE_DEFAULT_COLLECTIONS}")
        return v


class ThresholdSettings(BaseModel):
    """The indicators' knobs (units in the names: index units, days, hectares, fractions)."""

    model_config = ConfigDict(extra="forbid")

    forest_nbr_drop: float = Field(0.30, gt=0, lt=2)
    forest_ndvi_drop: float = Field(0.15, gt=0, lt=2)
    burn_nbr_drop: float = Field(0.10, gt=0, lt=2)
    window_days: int = Field(15, ge=1, le=60)
    confirm: int = Field(2, ge=1)
    of_next: int = Field(4, ge=1)
    within_days: int = Field(60, ge=1)
    forest_mmu_ha: float = Field(0.5, gt=0)
    burn_mmu_ha: float = Field(1.0, gt=0)
    #: a burn scar keeps the pixels first detected from this many days before its core's median date ...
    fire_days_before: int = Field(30, ge=0)
    #: ... to this many days after it
    fire_days_after: int = Field(60, ge=0)
    wetland_loss_fraction: float = Field(0.25, gt=0, lt=1)
    wetland_months: list[int] = Field(default_factory=lambda: [7, 8, 9])
    wetland_mmu_ha: float = Field(0.5, gt=0)
    grass_p_max: float = Field(0.05, gt=0, le=1)
    grass_slope_per_year: float = Field(0.005, ge=0)
    grass_mmu_ha: float = Field(5.0, gt=0)
    #: hysteresis of the degradation alerts: pixels next to a significant patch join it at this p-value
    #: (null: none; the modelled test has no noisy edge to complete. 0.10 suited the observed test)
    grass_weak_p_max: float | None = Field(None, gt=0, le=1)
    #: ... when their slope is at least this steep (NDVI per year, downwards)
    grass_weak_slope_per_year: float = Field(0.01, ge=0)
    #: a peak-window look this far (NDVI) under the pixel's median of about three years is a cloud-mask
    #: leak and left out of the yearly values; null keeps every look
    grass_leak_drop: float | None = Field(0.07, gt=0)

    @field_validator("wetland_months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        bad = [m for m in v if not 1 <= m <= 12]
        if bad or not v:
            raise ValueError(f"months {bad or v} are not calendar months; use numbers 1-12, e.g. [7, 8, 9]")
        return sorted(set(v))

    @model_validator(mode="after")
    def _confirm(self) -> "ThresholdSettings":
        if self.confirm > self.of_next:
            raise ValueError(f"confirm={self.confirm} is more than of_next={self.of_next}; an alert could never "
                             "be confirmed: make confirm <= of_next")
        return self

    def chain(self) -> ChainThresholds:
        keep = set(ChainThresholds.__dataclass_fields__)
        return ChainThresholds(**{k: v for k, v in self.model_dump().items() if k in keep})


class DaskSettings(BaseModel):
    """Where the array work runs: an existing scheduler, or a LocalCluster of this shape."""

    model_config = ConfigDict(extra="forbid")

    scheduler_address: str | None = None  #: e.g. tcp://10.0.0.5:8786 (Kubernetes, Coiled, HPC)
    n_workers: int | None = Field(None, ge=1)  #: LocalCluster workers (default: see flows.cluster)
    threads_per_worker: int | None = Field(None, ge=1)
    memory_limit: str | None = None  #: per worker, e.g. "4GiB"
    processes: bool | None = None  #: worker processes; default: in-process below 8 cores (measured fastest)


class Settings(BaseSettings):
    """Everything a run needs. See the README's configuration reference."""

    model_config = SettingsConfigDict(env_prefix="AMURWATCH_", env_nested_delimiter="__", extra="forbid",
                                      validate_default=True)

    sources: list[SourceConfig] = Field(default_factory=lambda: [
        SourceConfig(url=EARTH_SEARCH, collections=["sentinel-2-c1-l2a", "landsat-c2-l2"])])
    earthengine: EarthEngineConfig = Field(default_factory=EarthEngineConfig)  #: ``true`` or a table
    aoi: Path | None = None  #: None: the packaged aoi/landscapes.geojson
    landscapes: list[str] | None = None  #: a subset of the AOI file's ids
    out: str = "amurwatch-output"  #: output root: a path or an fsspec URL (s3://bucket/prefix)
    storage_options: dict[str, Any] = Field(default_factory=dict)  #: for an fsspec output root or cube root
    cubes: str | None = None  #: where the cubes go, a path or an fsspec URL (s3://bucket/cubes); default OUT/cubes
    resolution: int = 10  #: metres: 10, 20 or 30
    thresholds: ThresholdSettings = Field(default_factory=ThresholdSettings)
    smtp: SmtpSettings | None = None  #: None: no mail (dry-run writes .eml files if mail_dry_run)
    mail_dry_run: bool = False
    dask: DaskSettings = Field(default_factory=DaskSettings)
    state_db: str | None = None  #: SQLAlchemy URL; None: sqlite:///OUT/state.db
    lookback_days: int = Field(10, ge=0, le=120)  #: re-search this far behind the watermark
    baseline_years: int = Field(3, ge=1, le=20)  #: same-season baseline and forest mask
    season_start: str = "04-01"  #: MM-DD: first day of each year's monitoring season
    stale_clear_days: int = Field(21, ge=1)
    empty_nights: int = Field(3, ge=1)
    expire_after_days: int = Field(180, ge=1)
    report_window_days: int = Field(30, ge=1)
    task_timeout_s: float = Field(3600.0, gt=0)  #: a task still running after this fails its landscape
    io_retries: int = Field(3, ge=0, le=10)  #: Prefect retries of the search and ingest tasks (IO), not of compute
    io_retry_delay_s: list[float] = Field(default_factory=lambda: [1.0, 5.0, 20.0])  #: backoff between them

    @field_validator("earthengine", mode="before")
    @classmethod
    def _ee_toggle(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            v = v.strip().lower() in ("true", "1", "yes", "on")
        return {"enabled": v} if isinstance(v, bool) else v

    @model_validator(mode="after")
    def _some_source(self) -> "Settings":
        if not self.sources and not self.earthengine.enabled:
            raise ValueError("no imagery source: sources is empty and earthengine is off; add a STAC source "
                             "([[sources]] url = ...) or set earthengine = true")
        return self

    @field_validator("season_start")
    @classmethod
    def _mmdd(cls, v: str) -> str:
        import datetime as dt

        try:
            dt.date.fromisoformat(f"2001-{v}")
        except ValueError:
            raise ValueError(f"season_start {v!r} is not MM-DD; use e.g. '04-01'") from None
        return v

    @field_validator("resolution")
    @classmethod
    def _res(cls, v: int) -> int:
        if v not in (10, 20, 30):
            raise ValueError(f"resolution {v} m is not supported; use 10, 20 or 30")
        return v

    @field_validator("out")
    @classmethod
    def _out(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("out is empty; give a folder or a URL such as s3://bucket/amurwatch")
        return v

    @field_validator("state_db")
    @classmethod
    def _db(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"state_db {v!r} is not a database URL; use e.g. sqlite:////var/lib/amurwatch/state.db "
                             "or postgresql+psycopg://user@host/db")
        return v

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        data = _FILE_DATA.get()
        return (init_settings, env_settings) + ((_FileSource(settings_cls, data),) if data is not None else ())

    def state_url(self) -> str:
        if self.state_db:
            return self.state_db
        if "://" in self.out and not self.out.startswith("file://"):
            raise SettingsError(f"out={self.out!r} is remote, so state_db must be set (a database URL); "
                                "SQLite needs a local file")
        return f"sqlite:///{Path(self.out.removeprefix('file://')).resolve() / 'state.db'}"


ENV_PREFIX = "AMURWATCH_"
#: environment variables of ours that are not settings (credentials stay out of the model)
ENV_NOT_SETTINGS = {"AMURWATCH_SMTP_PASSWORD", "AMURWATCH_EE_KEY"}

_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("amurwatch_settings_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls, data: dict[str, Any]):
        super().__init__(settings_cls)
        self.data = data

    def get_field_value(self, field, field_name):  # pragma: no cover (not used: __call__ is overridden)
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SettingsError(f"settings file {path} does not exist; pass an existing .toml or .yaml file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise SettingsError(f"settings file {path} has suffix {path.suffix!r}; use .toml, .yaml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SettingsError(f"settings file {path} cannot be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} holds a {type(data).__name__}, not a table of settings")
    return data


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (TOML/YAML/JSON), the environment, then ``overrides`` (None values ignored)."""
    data = _read_file(Path(path)) if path else None
    kw = {k: v for k, v in overrides.items() if v is not None}
    unknown = [k for k in os.environ if k.startswith(ENV_PREFIX) and k not in ENV_NOT_SETTINGS
               and k[len(ENV_PREFIX):].lower().split("__")[0] not in Settings.model_fields]
    if unknown:
        raise SettingsError("unknown AMURWATCH_* environment variable(s): " + ", ".join(sorted(unknown))
                            + "; check the spelling against the README's configuration reference (nested keys "
                            "use '__', e.g. AMURWATCH_SMTP__HOST)")
    token = _FILE_DATA.set(data)
    try:
        return Settings(**kw)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, path, kw)) from None
    finally:
        _FILE_DATA.reset(token)


def _explain(exc: ValidationError, path, overrides: dict) -> str:
    lines = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"])
        top = str(e["loc"][0]) if e["loc"] else ""
        where = "command line" if top in overrides else (f"{path} or AMURWATCH_{top.upper()}" if path
                                                          else f"AMURWATCH_{top.upper()}")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = (f"unknown setting (value {e.get('input')!r}); check the spelling against the README's "
                   "configuration reference")
        elif "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], (dict, list)) \
                and top != "smtp":  # never echo anything near a credential
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"  - {key}: {msg} [from {where}]")
    return f"{len(lines)} invalid setting(s):\n" + "\n".join(lines)
