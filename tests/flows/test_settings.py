"""Settings: file < AMURWATCH_* environment < command line; every problem named, with its source."""

from __future__ import annotations

import pytest

from flows.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("AMURWATCH_"):
            monkeypatch.delenv(k)


def test_precedence_file_env_cli(tmp_path, monkeypatch):
    f = tmp_path / "s.toml"
    f.write_text('out = "/data/a"\nresolution = 20\nlookback_days = 5\n[smtp]\nhost = "mail.example.org"\nport = 2525\n'
                 '[thresholds]\nforest_nbr_drop = 0.25\n[[sources]]\nurl = "https://earth-search.aws.element84.com/v1"\n'
                 'collections = ["sentinel-2-c1-l2a"]\n')
    s = load_settings(f)
    assert (s.out, s.resolution, s.lookback_days, s.smtp.port) == ("/data/a", 20, 5, 2525)
    assert s.thresholds.chain().forest_nbr_drop == 0.25
    monkeypatch.setenv("AMURWATCH_RESOLUTION", "30")
    monkeypatch.setenv("AMURWATCH_SMTP__HOST", "relay.example.org")
    s = load_settings(f)
    assert s.resolution == 30 and s.smtp.host == "relay.example.org"
    s = load_settings(f, resolution=10, out="/data/cli")
    assert s.resolution == 10 and s.out == "/data/cli"
    assert s.state_url() == "sqlite:////data/cli/state.db"


def test_yaml_works_too(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("out: /data/y\nthresholds:\n  wetland_months: [8, 7]\n")
    s = load_settings(f)
    assert s.out == "/data/y" and s.thresholds.wetland_months == [7, 8]


def test_every_problem_is_named_with_its_source(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('lookbak_days = 4\nresolution = 15\nseason_start = "4-31"\n[thresholds]\nforest_nbr_drop = "abc"\n'
                 'wetland_months = [13]\n')
    with pytest.raises(SettingsError) as e:
        load_settings(f)
    msg = str(e.value)
    assert msg.startswith("5 invalid setting(s)")
    assert "lookbak_days: unknown setting" in msg
    assert "resolution: resolution 15 m is not supported; use 10, 20 or 30" in msg
    assert "season_start: season_start '4-31' is not MM-DD" in msg
    assert "thresholds.forest_nbr_drop: Input should be a valid number" in msg and "'abc'" in msg
    assert "thresholds.wetland_months: months [13] are not calendar months" in msg
    assert str(f) in msg


def test_unknown_environment_variables_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("AMURWATCH_LOOKBACK", "3")
    with pytest.raises(SettingsError, match="unknown AMURWATCH_\\* environment variable\\(s\\): AMURWATCH_LOOKBACK"):
        load_settings()
    monkeypatch.delenv("AMURWATCH_LOOKBACK")
    monkeypatch.setenv("AMURWATCH_SMTP_PASSWORD", "not a setting, allowed")
    load_settings()
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("out = [unclosed")
    with pytest.raises(SettingsError, match="cannot be parsed"):
        load_settings(bad)
    with pytest.raises(SettingsError, match="suffix '.ini'"):
        (tmp_path / "s.ini").write_text("x")
        load_settings(tmp_path / "s.ini")


def test_a_password_in_the_file_is_refused_and_never_echoed(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[smtp]\nhost = "mail.example.org"\npassword = "hunter2-planted"\n')
    with pytest.raises(SettingsError) as e:
        load_settings(f)
    assert "AMURWATCH_SMTP_PASSWORD" in str(e.value) and "hunter2-planted" not in str(e.value)


def test_remote_output_needs_a_database_url():
    s = load_settings(out="s3://bucket/amurwatch")
    with pytest.raises(SettingsError, match="state_db must be set"):
        s.state_url()
    with pytest.raises(SettingsError, match="state_db 'state.db' is not a database URL"):
        load_settings(state_db="state.db")
    with pytest.raises(SettingsError, match="confirm=5 is more than of_next=4"):
        load_settings(thresholds={"confirm": 5})
