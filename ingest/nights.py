"""When it is night: the definitions the daily features and the detectors share.

Pure (numpy only, no Django), so the detectors may import it.

* Resting night: local ``NIGHT_START_HOUR``:00 to ``NIGHT_END_HOUR``:00 (01:00-05:59),
  the core of the night, when most people are asleep and still. The midnight hour and
  the hour from 06:00 catch falling asleep and waking, and raise a night's mean.
  Resting heart rate is the mean heart rate over the still (step-free) part of it;
  see ``forecasting.features`` (hourly) and the detectors (minutes).
* Sleep night: noon to noon UTC, its sleep counted for the morning it ends
  (``SLEEP_NIGHT_OFFSET_H``; the ``sleep_nightly`` rollup buckets by it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

NIGHT_START_HOUR = 1
NIGHT_END_HOUR = 6
SLEEP_NIGHT_OFFSET_H = 12
MINUTES_PER_DAY = 1440


def is_night_hour(local_hour: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True for local hours (0-23) inside the resting night.

    >>> is_night_hour([0, 1, 5, 6]).tolist()
    [False, True, True, False]
    """
    h = np.asarray(local_hour)
    return (h >= NIGHT_START_HOUR) & (h < NIGHT_END_HOUR)


def is_night_minute(local_minute_of_day: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True for local minutes of the day (0-1439) inside the resting night (detectors).

    >>> is_night_minute([59, 60, 359, 360]).tolist()
    [False, True, True, False]
    """
    m = np.asarray(local_minute_of_day)
    return (m >= NIGHT_START_HOUR * 60) & (m < NIGHT_END_HOUR * 60)


def night_window_ms(local_day: int, utc_offset_min: int) -> tuple[int, int]:
    """UTC epoch ms [start, end) of the resting night of a local day (days since the epoch,
    counted in local time) for a fixed UTC offset in minutes."""
    base = local_day * 86_400_000 - utc_offset_min * 60_000
    return base + NIGHT_START_HOUR * 3_600_000, base + NIGHT_END_HOUR * 3_600_000
