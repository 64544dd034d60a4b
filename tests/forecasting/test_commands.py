"""The management commands: backtest on real files, and the daily commands' refusals."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command


def test_the_backtest_command_prints_json_for_every_model_and_writes_charts(shared_data, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command("backtest", "--data", str(shared_data / "stanford-covid19-phase1"),
                 str(shared_data / "stanford-covid19-phase2"), "--models", "naive,seasonal_naive",
                 "--json", "--plots", str(tmp_path), stdout=out, stderr=err)
    data = json.loads(out.getvalue())
    assert data["series"] >= 2 and data["days"] > 150
    assert [m["name"] for m in data["models"]] == ["naive", "seasonal_naive"]
    for m in data["models"]:
        assert {"name", "mase", "mae", "coverage_80", "within_3bpm_7d", "direction_accuracy"} <= set(m)
        assert m["n"] > 0 and m["mae"] > 0
    charts = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "backtest_resting_hr_mase_by_horizon.png" in charts and len(charts) >= 2


def test_the_backtest_command_names_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("backtest", "--data", str(tmp_path / "nothing-here"), stdout=io.StringIO(),
                     stderr=io.StringIO())


@pytest.mark.django_db
def test_forecast_refuses_to_pretend_when_no_model_was_ever_trained():
    out = io.StringIO()
    with pytest.raises(CommandError, match="train first"):
        call_command("forecast", "--metric", "resting_hr", stdout=out)
    assert "no promoted model" in out.getvalue()
