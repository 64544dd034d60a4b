"""Daily feature series per patient, from one hourly intermediate.

Two sources produce the same intermediate (``Hourly``), and one function turns it into
daily features, so the live path and the backtests on files compute identical numbers:

* ``hourly_from_frame``: a recording as read by ``ingest.readers.load_frames`` or made
  by ``ingest.simulator`` (columns metric, time, end, value, label);
* ``forecasting.rollups.hourly_from_db``: the rollups of the samples store
  (``samples_1h``, minute step sums, ``sleep_nightly``) plus the sparse raw ``activity``
  intervals; ``forecasting.rollups.daily_from_db`` is the one read of a patient's daily
  features that coaching, the chart, /daily and the forecasters all use.

``Hourly.hours`` has one row per (patient, UTC hour) with data::

    hr_n, hr_sum, hr_min, hr_max   heart-rate count, sum, min, max in that hour
    steps, steps_n                 step total and number of step records
    active_min                     minutes of brisk walking (>= 100 steps in the minute)
    act_min                        minutes of logged moderate/vigorous activity intervals
    hrv_n, hrv_sum                 HRV (RMSSD) count and sum

``Hourly.sleep`` has one row per (patient, night, stage) with minutes, where a night is
the noon-to-noon UTC window that starts on ``night`` (the rollups' definition).

``daily_features`` returns, per patient, a DataFrame on a complete calendar of local
dates. A day without enough data is NaN in that column (masked), never zero: see
``MIN_HR_HOURS``, ``MIN_RESTING_HOURS``. Columns are ``FEATURES``.

Definitions (local days):

* ``resting_hr``: mean heart rate over the still hours of the resting night
  (``ingest.nights``: 01:00-05:59 local), an hour being still when it is measured, has no
  steps and spans at most ``MAX_REST_RANGE`` bpm; at least ``MIN_RESTING_HOURS`` of them.
* ``active_minutes``: moderate-equivalent minutes (WHO counts a vigorous minute as two):
  the larger of logged activity intervals (moderate x1, vigorous x2) and minutes walked
  at ``BRISK_STEPS_PER_MIN`` or more, so the two sources are not added twice.
* ``sleep_minutes``: minutes asleep in the night that ends on the morning of the day.

Pure (pandas and numpy): no Django here, the forecasters import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingest.nights import SLEEP_NIGHT_OFFSET_H, is_night_hour

FEATURES = (
    "resting_hr", "hr_mean", "hr_range", "steps", "active_minutes",
    "sleep_minutes", "sleep_deep", "sleep_light", "sleep_rem", "sleep_awake", "hrv",
)
#: Covariates the global model reads, in the order of ``History.covariates``.
COVARIATES = ("resting_hr", "hr_mean", "hr_range", "steps", "active_minutes", "sleep_minutes", "hrv")
#: The metrics the forecasters predict (a subset of FEATURES) and their units.
TARGETS = {"resting_hr": "beats/min", "sleep_minutes": "min", "steps": "steps"}
HOURLY_COLUMNS = ("hr_n", "hr_sum", "hr_min", "hr_max", "steps", "steps_n",
                  "active_min", "act_min", "hrv_n", "hrv_sum")

MIN_HR_HOURS = 6          # hours with heart rate for a day's mean and range
MIN_RESTING_HOURS = 2     # night hours at rest for a day's resting heart rate
MIN_HR_PER_HOUR = 3       # samples in an hour for it to count as measured
MAX_REST_RANGE = 50       # bpm: a still hour spanning more is sensor noise, not rest
BRISK_STEPS_PER_MIN = 100  # moderate-intensity cadence (Tudor-Locke et al. 2018)
STAGES = ("deep", "light", "rem", "awake")


@dataclass
class Hourly:
    """The hourly intermediate: see the module docstring for the columns."""

    hours: pd.DataFrame  # patient, hour (datetime64[ns, UTC]), HOURLY_COLUMNS
    sleep: pd.DataFrame  # patient, night (datetime64[ns], naive date), stage, minutes

    @classmethod
    def empty(cls) -> Hourly:
        hours = pd.DataFrame({"patient": pd.Series(dtype=object),
                              "hour": pd.Series(dtype="datetime64[ns, UTC]"),
                              **{c: pd.Series(dtype=float) for c in HOURLY_COLUMNS}})
        sleep = pd.DataFrame({"patient": pd.Series(dtype=object),
                              "night": pd.Series(dtype="datetime64[ns]"),
                              "stage": pd.Series(dtype=object),
                              "minutes": pd.Series(dtype=float)})
        return cls(hours, sleep)

    @classmethod
    def concat(cls, parts: Iterable[Hourly]) -> Hourly:
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(pd.concat([p.hours for p in parts], ignore_index=True),
                   pd.concat([p.sleep for p in parts], ignore_index=True))


# ------------------------------------------------------------------ from a frame

_NS_HOUR = 3_600_000_000_000
_NS_MIN = 60_000_000_000
_NS_DAY = 24 * _NS_HOUR


def _ns(times: pd.Series) -> np.ndarray:
    """Epoch nanoseconds of a datetime64 (UTC) column."""
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _group(keys: np.ndarray, values: np.ndarray, stats: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "v": values}).groupby("k")["v"].agg(list(stats))


def hourly_from_frame(patient, frame: pd.DataFrame) -> Hourly:
    """The hourly intermediate of one recording (``load_frames`` / simulator shape)."""
    if frame.empty:
        return Hourly.empty()
    metric = frame["metric"].to_numpy()
    t = _ns(frame["time"])
    value = frame["value"].to_numpy(dtype=np.float64)
    hour = t // _NS_HOUR
    parts = []
    sel = metric == "heart_rate"
    if sel.any():
        g = _group(hour[sel], value[sel], ("count", "sum", "min", "max"))
        g.columns = ["hr_n", "hr_sum", "hr_min", "hr_max"]
        parts.append(g)
    sel = metric == "steps"
    if sel.any():
        g = _group(hour[sel], value[sel], ("sum", "count"))
        g.columns = ["steps", "steps_n"]
        parts.append(g)
        # Same semantics as samples_1m: a step record counts in the minute it starts.
        per_min = _group(t[sel] // _NS_MIN, value[sel], ("sum",))["sum"]
        brisk = (per_min.to_numpy() >= BRISK_STEPS_PER_MIN).astype(float)
        parts.append(_group(per_min.index.to_numpy() // 60, brisk, ("sum",))
                     .rename(columns={"sum": "active_min"}))
    sel = metric == "hrv_rmssd"
    if sel.any():
        g = _group(hour[sel], value[sel], ("count", "sum"))
        g.columns = ["hrv_n", "hrv_sum"]
        parts.append(g)
    sel = metric == "activity"
    if sel.any():
        # Frames carry no intensity: every logged activity interval counts as active.
        minutes = (_ns(frame["end"][sel]) - t[sel]) / _NS_MIN
        parts.append(_group(hour[sel], minutes, ("sum",)).rename(columns={"sum": "act_min"}))
    if parts:
        hours = pd.concat(parts, axis=1).sort_index()
        stamps = pd.to_datetime(hours.index.to_numpy() * _NS_HOUR, utc=True)
        hours = hours.reset_index(drop=True)
        hours.insert(0, "hour", stamps)
        for col in HOURLY_COLUMNS:
            if col not in hours:
                hours[col] = np.nan
        hours.insert(0, "patient", patient)
        hours = hours[["patient", "hour", *HOURLY_COLUMNS]]
    else:
        hours = Hourly.empty().hours
    sel = metric == "sleep_stage"
    if sel.any():
        start = t[sel]
        day_ns = 24 * _NS_HOUR
        night = ((start - SLEEP_NIGHT_OFFSET_H * _NS_HOUR) // day_ns) * day_ns
        minutes = (_ns(frame["end"][sel]) - start) / _NS_MIN
        sleep = (pd.DataFrame({"night": pd.to_datetime(night), "stage": frame["label"].to_numpy()[sel],
                               "minutes": minutes})
                 .groupby(["night", "stage"], as_index=False)["minutes"].sum())
        sleep.insert(0, "patient", patient)
    else:
        sleep = Hourly.empty().sleep
    return Hourly(hours, sleep)


# ---------------------------------------------------------------- daily features

def _daily_one_tz(hours: pd.DataFrame, tz: str) -> pd.DataFrame:
    local = hours["hour"].dt.tz_convert(tz)
    h = hours.assign(date=local.dt.tz_localize(None).dt.floor("D"), lhour=local.dt.hour)
    measured = h["hr_n"].fillna(0) >= MIN_HR_PER_HOUR
    h["hr_mean_h"] = np.where(measured, h["hr_sum"] / h["hr_n"], np.nan)
    # At rest: a measured night hour without steps. While heart rate is recorded the
    # watch is worn, so an hour without step records had no steps.
    # An hour whose heart rate spans more than MAX_REST_RANGE without a single step is
    # a loose or off-wrist sensor (seen in the Stanford recordings), not rest.
    rest = (measured & is_night_hour(h["lhour"].to_numpy()) & (h["steps"].fillna(0) == 0)
            & ((h["hr_max"] - h["hr_min"]) <= MAX_REST_RANGE))
    h["rest_sum"] = np.where(rest, h["hr_sum"], 0.0)
    h["rest_n"] = np.where(rest, h["hr_n"], 0.0)
    h["rest_hours"] = rest.astype(int)
    h["hr_hours"] = measured.astype(int)
    h["hr_sum_m"] = np.where(measured, h["hr_sum"], 0.0)
    h["hr_n_m"] = np.where(measured, h["hr_n"], 0.0)
    g = h.groupby(["patient", "date"])
    d = g.agg(hr_hours=("hr_hours", "sum"), hr_sum=("hr_sum_m", "sum"), hr_n=("hr_n_m", "sum"),
              hr_hi=("hr_mean_h", "max"), hr_lo=("hr_mean_h", "min"),
              rest_hours=("rest_hours", "sum"), rest_sum=("rest_sum", "sum"), rest_n=("rest_n", "sum"),
              steps=("steps", "sum"), steps_n=("steps_n", "sum"),
              active_min=("active_min", "sum"), act_min=("act_min", "sum"),
              act_n=("act_min", "count"), hrv_sum=("hrv_sum", "sum"), hrv_n=("hrv_n", "sum"))
    out = pd.DataFrame(index=d.index)
    enough = d["hr_hours"] >= MIN_HR_HOURS
    out["resting_hr"] = np.where(d["rest_hours"] >= MIN_RESTING_HOURS, d["rest_sum"] / d["rest_n"].where(d["rest_n"] > 0), np.nan)
    out["hr_mean"] = np.where(enough, d["hr_sum"] / d["hr_n"].where(d["hr_n"] > 0), np.nan)
    out["hr_range"] = np.where(enough, d["hr_hi"] - d["hr_lo"], np.nan)
    has_steps = d["steps_n"] > 0
    out["steps"] = np.where(has_steps, d["steps"], np.nan)
    active = np.maximum(d["active_min"].fillna(0), d["act_min"].fillna(0))
    out["active_minutes"] = np.where(has_steps | (d["act_n"] > 0), np.minimum(active, 1440), np.nan)
    out["hrv"] = np.where(d["hrv_n"] > 0, d["hrv_sum"] / d["hrv_n"].where(d["hrv_n"] > 0), np.nan)
    return out


def _daily_sleep(sleep: pd.DataFrame) -> pd.DataFrame:
    if sleep.empty:
        return pd.DataFrame(columns=["sleep_minutes", *(f"sleep_{s}" for s in STAGES)],
                            index=pd.MultiIndex.from_arrays([[], []], names=["patient", "date"]))
    wide = sleep.pivot_table(index=["patient", "night"], columns="stage", values="minutes",
                             aggfunc="sum", fill_value=0.0)
    for stage in ("deep", "light", "rem", "awake", "asleep"):
        if stage not in wide:
            wide[stage] = 0.0
    out = pd.DataFrame(index=wide.index)
    out["sleep_minutes"] = wide["deep"] + wide["light"] + wide["rem"] + wide["asleep"]
    staged = (wide["deep"] + wide["light"] + wide["rem"]) > 0
    for stage in STAGES:
        out[f"sleep_{stage}"] = wide[stage].where(staged)
    out.loc[out["sleep_minutes"] <= 0, "sleep_minutes"] = np.nan
    # The night that starts at noon on D is the sleep of the morning of D + 1.
    out.index = out.index.set_levels(out.index.levels[1] + pd.Timedelta(days=1), level=1)
    out.index = out.index.set_names(["patient", "date"])
    return out


def daily_table(hourly: Hourly, tz: str | Mapping = "UTC") -> pd.DataFrame:
    """Every patient's daily features in one frame indexed by (patient, date): only the
    days with some data, columns as computed (a subset of FEATURES). See ``daily_features``."""
    hours = hourly.hours
    zones = (pd.Series({p: tz for p in hours["patient"].unique()}) if isinstance(tz, str)
             else pd.Series({p: tz.get(p, "UTC") for p in hours["patient"].unique()}, dtype=object))
    daily_parts = [
        _daily_one_tz(hours[hours["patient"].isin(zones.index[zones == zone])], zone)
        for zone in zones.unique()
    ]
    daily = pd.concat(daily_parts) if daily_parts else pd.DataFrame()
    sleep = _daily_sleep(hourly.sleep)
    return daily.join(sleep, how="outer") if len(daily) else sleep


def split_by_patient(table: pd.DataFrame, first=None, last=None) -> dict:
    """One DataFrame of FEATURES per patient (sorted by patient) from a ``daily_table``,
    on a complete daily calendar named ``date``: each patient's first to last day with
    data, or ``first`` to ``last`` (inclusive, the same for all; days outside dropped).

    Vectorised: the rows are scattered once into one dense array, and each patient's
    frame is a slice of it (a reindex per patient costs milliseconds, 10,000 of them a
    minute)."""
    if table.empty:
        return {}
    values = table.reindex(columns=list(FEATURES)).to_numpy(dtype=np.float64)
    codes, patients = pd.factorize(table.index.get_level_values(0), sort=True)
    day = table.index.get_level_values(1).to_numpy(dtype="datetime64[D]").view(np.int64)
    n = len(patients)
    if first is None or last is None:
        start = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(start, codes, day)
        stop = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(stop, codes, day)
        lengths = stop - start + 1
    else:
        lo = np.datetime64(pd.Timestamp(first).date(), "D").astype(np.int64)
        hi = np.datetime64(pd.Timestamp(last).date(), "D").astype(np.int64)
        keep = (day >= lo) & (day <= hi)
        codes, day, values = codes[keep], day[keep], values[keep]
        start = np.full(n, lo)
        lengths = np.full(n, hi - lo + 1)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    dense = np.full((int(offsets[-1]), len(FEATURES)), np.nan)
    dense[offsets[codes] + (day - start[codes])] = values
    columns = pd.Index(list(FEATURES))
    shared = None if first is None or last is None else \
        pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D", name="date")
    out = {}
    for i, patient in enumerate(patients):
        calendar = shared if shared is not None else pd.date_range(
            pd.Timestamp(int(start[i]) * _NS_DAY), periods=int(lengths[i]), freq="D", name="date")
        out[patient] = pd.DataFrame(dense[offsets[i]: offsets[i + 1]], index=calendar, columns=columns)
    return out


def daily_features(hourly: Hourly, tz: str | Mapping = "UTC") -> dict:
    """Per patient, a DataFrame of FEATURES on a complete daily calendar (NaN = missing).

    ``tz`` is one IANA zone for everyone, or a mapping patient -> zone. Days run midnight
    to midnight local time; the calendar spans the patient's first to last day with data.
    """
    return split_by_patient(daily_table(hourly, tz))


def features_from_frames(frames: Mapping, tz: str | Mapping = "UTC", progress: bool = False) -> dict:
    """Daily features of several recordings (``load_frames`` or simulator output)."""
    items = frames.items()
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(frames), desc="features", unit="series")
    return daily_features(Hourly.concat(hourly_from_frame(p, f) for p, f in items), tz)


def make_histories(features: Mapping, target: str, min_observed: int = 14) -> dict:
    """``History`` per patient for one target metric, covariates attached; a patient with
    fewer than ``min_observed`` observed days of the target is left out."""
    from forecasting.forecasters.base import History

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    out = {}
    columns, picks = None, None
    for patient, frame in features.items():
        if frame.columns is not columns:  # frames of one read share their columns: look up once
            columns = frame.columns
            names = list(columns)
            picks = ([names.index(target)] + [names.index(c) for c in COVARIATES]
                     if columns.is_unique and set(COVARIATES) | {target} <= set(names) else None)
        if picks is None:
            y = frame[target].to_numpy(dtype=np.float64)
            cov = frame.reindex(columns=list(COVARIATES)).to_numpy(dtype=np.float64)
        else:
            both = frame.to_numpy(dtype=np.float64)[:, picks]  # one copy: target, covariates
            y, cov = both[:, 0].copy(), both[:, 1:]
        if np.count_nonzero(~np.isnan(y)) < min_observed:
            continue
        out[patient] = History(y, np.datetime64(frame.index[0].date(), "D"), cov)
    return out
