"""PNG charts of forecasts against what happened (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forecasting.backtest import BacktestResult


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_backtest(result: BacktestResult, series: dict, out_dir: str | Path, horizon: int = 7,
                  max_series: int = 6) -> list[Path]:
    """Per series: the observed values, and each model's ``horizon``-day-ahead forecast
    with its 80% band, drawn at the day it forecast. Plus one chart of MASE by horizon."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    k = horizon - 1
    names = list(result.forecasts)
    colours = dict(zip(names, plt.get_cmap("tab10").colors, strict=False))
    for pos, sid in enumerate(result.series[:max_series]):
        rows = np.flatnonzero(result.origins[:, 0] == pos)
        if not len(rows):
            continue
        h = series[sid]
        days = h.start + np.arange(len(h.y)).astype("timedelta64[D]")
        fig, ax = plt.subplots(figsize=(11, 4.2))
        ax.plot(days, h.y, "o", color="black", ms=3.5, label="observed")
        when = h.start + (result.origins[rows, 1] + horizon).astype("timedelta64[D]")
        for name in names:
            fc = result.forecasts[name][rows, k]
            if name in ("lstm", "ets", "seasonal_naive"):
                ax.plot(when, fc[:, 0], "-", color=colours[name], lw=1.4, label=f"{name} ({horizon} d ahead)")
                if name == "lstm":
                    ax.fill_between(when, fc[:, 1], fc[:, 3], color=colours[name], alpha=0.18,
                                    label="lstm 80% interval")
        ax.axvline(when.min() - np.timedelta64(horizon, "D"), color="grey", ls=":", lw=1)
        ax.set_title(f"{result.target}: series {pos + 1}, forecasts made {horizon} days before")
        ax.set_ylabel(result.target.replace("_", " "))
        ax.legend(loc="upper left", fontsize=8, ncol=3)
        fig.autofmt_xdate()
        fig.tight_layout()
        path = out / f"backtest_{result.target}_series{pos + 1}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in names:
        ax.plot(np.arange(1, result.horizon + 1), [np.nan if v is None else v for v in result.by_horizon(name)],
                "o-", ms=3, color=colours[name], label=name)
    ax.set_xlabel("days ahead")
    ax.set_ylabel("MASE (lower is better)")
    ax.set_title(f"{result.target}: error by horizon ({len(result.series)} series)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"backtest_{result.target}_mase_by_horizon.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
