"""Pure anomaly detectors (numpy only: no Faust, no Django). See docs/detectors.md."""

from streams.detectors.base import Detector, Event, MinuteFrame, Samples
from streams.detectors.cusum import CuSumRHR
from streams.detectors.heart_rate import HighHeartRateAtRest, LowHeartRateAtRest
from streams.detectors.illness import IllnessEpisode
from streams.detectors.nightsignal import NightSignal
from streams.detectors.sleep import SleepDebt
from streams.detectors.suite import (
    DEFAULT_DETECTORS,
    DETECTORS,
    TUNABLE,
    PatientMonitor,
    validate_overrides,
)
from streams.detectors.wear import WearGap

__all__ = [
    "DEFAULT_DETECTORS", "DETECTORS", "TUNABLE", "CuSumRHR", "Detector", "Event",
    "HighHeartRateAtRest", "IllnessEpisode",
    "LowHeartRateAtRest", "MinuteFrame", "NightSignal", "PatientMonitor", "Samples", "SleepDebt",
    "WearGap", "validate_overrides",
]
