"""The clinician's verdict feeds back into one patient's thresholds, within bounds,
recorded with its reason in the one threshold history, and reversible."""

from __future__ import annotations

import pytest

from alerts import parameters, states, workflow
from alerts.models import Alert, AlertAction, DetectorThreshold
from tests.api.factories import make_alert


def _judge(world, patient, n: int, verdict=states.NOT_ACTIONABLE, detector="hr_high_at_rest"):
    for i in range(n):
        alert = make_alert(patient, detector, "yellow", 600 + i * 60)
        workflow.resolve(alert, world.alice.user, "walked up the stairs", verdict)


def test_repeated_not_actionable_verdicts_raise_that_patients_threshold_within_its_bound_and_a_clinician_reverses_it(world):
    rule = parameters.FEEDBACK["hr_high_at_rest"]
    _judge(world, world.pat, rule.after - 1)
    assert not DetectorThreshold.objects.filter(patient=world.pat).exists()  # not yet
    _judge(world, world.pat, 1)
    row = DetectorThreshold.objects.get(patient=world.pat, detector="hr_high_at_rest")
    assert row.params == {"threshold": 120 + rule.step} and row.updated_by is None
    change = row.history.latest()
    assert change.history_change_reason.startswith("automatic: 3 alerts judged not actionable")
    assert "120 -> 125" in change.history_change_reason and change.history_user is None
    # Only this patient: the other patient of the team keeps the detector's defaults.
    assert not DetectorThreshold.objects.filter(patient=world.pat2).exists()

    # More runs of verdicts move it step by step, never past the bound.
    for _ in range(10):
        _judge(world, world.pat, rule.after)
    assert DetectorThreshold.objects.get(pk=row.pk).params["threshold"] == rule.bound == 150

    # A clinician reverses the last automatic change: the value before it applies again.
    last = DetectorThreshold.history.filter(patient_id=world.pat.pk).latest()
    workflow.revert_threshold_change(world.pat, last.history_id, world.alice.user, "too lenient for her")
    assert DetectorThreshold.objects.get(pk=row.pk).params["threshold"] == 145
    undo = DetectorThreshold.history.filter(patient_id=world.pat.pk).latest()
    assert undo.history_user == world.alice.user and "too lenient for her" in undo.history_change_reason
    # ...and reversing the first change clears the override: the defaults apply.
    first = DetectorThreshold.history.filter(patient_id=world.pat.pk).earliest()
    workflow.revert_threshold_change(world.pat, first.history_id, world.alice.user, "back to defaults")
    assert not DetectorThreshold.objects.filter(patient=world.pat).exists()
    assert DetectorThreshold.history.filter(patient_id=world.pat.pk).latest().history_type == "-"


def test_actionable_or_unsure_verdicts_move_nothing_and_verdicts_before_a_change_do_not_count_again(world):
    _judge(world, world.pat, 3, states.ACTIONABLE)
    _judge(world, world.pat, 3, states.UNSURE)
    assert not DetectorThreshold.objects.exists()
    assert set(Alert.objects.filter(patient=world.pat, status="resolved").values_list("verdict", flat=True)) == {
        states.ACTIONABLE, states.UNSURE}
    workflow.set_thresholds(world.pat, "hr_high_at_rest", {"threshold": 130}, world.alice.user, "athlete")
    _judge(world, world.pat, 2)  # 2 after the clinician's change: not yet a run of 3
    assert DetectorThreshold.objects.get(patient=world.pat).params == {"threshold": 130}


def test_a_threshold_change_is_recorded_with_before_after_who_and_why_and_out_of_range_is_refused(world):
    workflow.set_thresholds(world.pat, "hr_high_at_rest", {"threshold": 130}, world.alice.user, "athlete")
    workflow.set_thresholds(world.pat, "hr_high_at_rest", {"threshold": 135}, world.carol.user, "still too many")
    new, old = DetectorThreshold.history.filter(patient_id=world.pat.pk).order_by("-history_date")[:2]
    assert (old.params, new.params) == ({"threshold": 130}, {"threshold": 135})
    assert new.prev_record == old and new.history_user == world.carol.user
    assert new.history_change_reason == "still too many"
    with pytest.raises(workflow.InvalidInput) as err:
        workflow.set_thresholds(world.pat, "hr_high_at_rest", {"threshold": 300}, world.alice.user, "typo")
    assert err.value.field == "params.threshold" and "90 and 180 bpm" in err.value.reason


def test_an_unknown_verdict_is_refused_and_an_escalated_alert_is_resolved_by_its_target_only(world):
    with pytest.raises(workflow.InvalidInput):
        workflow.resolve(world.red, world.alice.user, "fine", "maybe")
    workflow.escalate(world.red, world.alice.user, clinician_id=world.carol.pk, reason="cardiology")
    with pytest.raises(workflow.NotAllowed) as err:
        workflow.resolve(world.red, world.alice.user, "fine now", states.ACTIONABLE)
    assert "Nurse Carol" in err.value.reason
    workflow.resolve(world.red, world.carol.user, "seen, treated", states.ACTIONABLE)
    step = AlertAction.objects.get(alert=world.red, action="resolve")
    assert (step.actor, step.verdict) == (world.carol.user, states.ACTIONABLE)


def test_bulk_acknowledge_acknowledges_each_through_the_workflow(world):
    done, refused = workflow.acknowledge_many([world.red.pk, world.yellow.pk], world.alice.user)
    assert sorted(done) == sorted([world.red.pk, world.yellow.pk]) and refused == {}
    assert AlertAction.objects.filter(action="acknowledge", actor=world.alice.user).count() == 2
    _, refused = workflow.acknowledge_many([world.other_alert.pk], world.alice.user)
    assert refused == {world.other_alert.pk: "no access to this alert's patient"}
