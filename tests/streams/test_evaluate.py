"""evaluate_detectors on the simulator's ground truth and on the real Stanford recordings."""

from __future__ import annotations

import doctest
import importlib
import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.conftest import SHARED_DATA

PHASE1 = SHARED_DATA / "stanford-covid19-phase1"


def run(*args) -> dict:
    out = StringIO()
    call_command("evaluate_detectors", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize("module", ["base", "heart_rate", "nightsignal", "cusum", "wear", "sleep", "suite"])
def test_the_docstring_examples_run(module):
    m = importlib.import_module(f"streams.detectors.{module}")
    result = doctest.testmod(m)
    assert result.failed == 0


def test_every_injected_episode_is_alerted_and_controls_stay_quiet_for_30_days():
    sim = run("--simulate", "20", "--days", "30", "--seed", "3")["simulated"]
    assert sim["episodes_total"] >= 10
    missed = [e for e in sim["episodes"] if not e["detected"]]
    assert missed == []
    assert sim["controls"] >= 4
    assert sim["false_alerts_on_controls"] == 0, sim["false_alerts"]


@pytest.mark.skipif(not PHASE1.exists(), reason=f"the real recordings are not at {PHASE1}")
def test_the_covid_positive_participant_is_alerted_before_symptom_onset(tmp_path):
    labels = tmp_path / "onsets.csv"
    labels.write_text("participant,symptom_onset\nAV2GF3B,2020-08-02\n")
    report = run("--data", str(PHASE1), "--labels", str(labels), "--plots", str(tmp_path / "plots"))
    assert {"participants", "sensitivity", "false_alert_days_per_month"} <= set(report)
    by_id = {p["id"]: p for p in report["participants"]}
    assert {"AV2GF3B", "AJ7TSV9"} <= set(by_id)
    positive = by_id["AV2GF3B"]
    assert positive["detected"] is True
    assert positive["lead_days"] > 0  # raised before symptoms began
    assert {"id", "detected", "lead_days", "false_alert_days_per_month"} <= set(positive)
    assert by_id["AJ7TSV9"]["detected"] is None  # no onset known in this date frame
    assert (tmp_path / "plots" / "AV2GF3B.png").stat().st_size > 10_000


def test_labels_without_the_needed_columns_are_refused(tmp_path):
    from django.core.management.base import CommandError

    bad = tmp_path / "bad.csv"
    bad.write_text("who,when\nx,2020-01-01\n")
    with pytest.raises(CommandError, match="participant, symptom_onset"):
        run("--data", str(tmp_path), "--labels", str(bad))
