"""The threshold form's table (alerts.parameters) agrees with the detectors it describes."""

from __future__ import annotations

import inspect

import pytest

from alerts import parameters
from streams.detectors.illness import NIGHTSIGNAL_DEFAULTS
from streams.detectors.suite import DETECTORS, TUNABLE


@pytest.mark.parametrize("detector", sorted(parameters.PARAMETERS))
def test_each_described_parameter_is_tunable_and_its_default_is_the_detectors_own_and_in_range(detector):
    sig = {p.name: p.default for p in inspect.signature(DETECTORS[detector].__init__).parameters.values()}
    if detector == "nightsignal_rhr":  # it raises queue items only inside the illness episode
        sig.update(NIGHTSIGNAL_DEFAULTS)
    for name, p in parameters.PARAMETERS[detector].items():
        assert name in TUNABLE[detector]
        assert p.default == float(sig[name]), f"{detector}.{name}"
        assert p.low <= p.default <= p.high


@pytest.mark.parametrize("detector", sorted(parameters.FEEDBACK))
def test_each_feedback_rule_moves_a_described_parameter_away_from_alerting_to_a_bound_in_range(detector):
    rule = parameters.FEEDBACK[detector]
    p = parameters.parameter(detector, rule.parameter)
    assert p is not None and p.low <= rule.bound <= p.high
    assert (rule.bound - p.default) * rule.step > 0


def test_a_value_out_of_range_is_named_with_its_range_and_unit():
    assert parameters.check("hr_high_at_rest", {"threshold": 200}) == {
        "threshold": "Heart rate above must be between 90 and 180 bpm"}
    assert parameters.check("hr_high_at_rest", {"threshold": 130}) == {}
