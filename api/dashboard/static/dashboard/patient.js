/* The patient page's charts, drawn with uPlot (vendored) from /api/v1/patients/{id}/chart.
 * Heart rate: hourly mean with a min-max band, daily resting rate, its 28-day baseline
 * band, the forecast band (when forecasts exist) and the alerts as shaded windows.
 * Sleep and steps: daily bars, sleep with the 7-hour (AASM) line. */
(function () {
  "use strict";
  const root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") return;
  const status = document.getElementById("chart-status");
  const SEV = { red: "rgba(220,38,38,0.22)", yellow: "rgba(234,179,8,0.25)", info: "rgba(59,130,246,0.15)" };
  const SEV_LINE = { red: "#dc2626", yellow: "#ca8a04", info: "#3b82f6" };
  let plots = [];

  function merge(parts) {
    // parts: [{t: [...], cols: [[...], ...]}] -> uPlot aligned data [x, ...cols]
    const xs = Array.from(new Set(parts.flatMap(p => p.t))).sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const data = [xs];
    for (const p of parts) {
      for (const col of p.cols) {
        const out = new Array(xs.length).fill(null);
        p.t.forEach((t, i) => { out[index.get(t)] = col[i] ?? null; });
        data.push(out);
      }
    }
    return data;
  }

  function alertMarkers(alerts) {
    return {
      hooks: {
        drawClear: [u => {
          const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
          for (const a of alerts) {
            let x0 = u.valToPos(a.start, "x", true), x1 = u.valToPos(a.end, "x", true);
            if (x1 < u.bbox.left || x0 > u.bbox.left + u.bbox.width) continue;
            x0 = Math.max(x0, u.bbox.left); x1 = Math.min(Math.max(x1, x0 + 3), u.bbox.left + u.bbox.width);
            ctx.fillStyle = SEV[a.severity] || SEV.info;
            ctx.fillRect(x0, top, x1 - x0, h);
            ctx.fillStyle = SEV_LINE[a.severity] || SEV_LINE.info;
            ctx.beginPath(); ctx.moveTo(x0 - 5, top); ctx.lineTo(x0 + 5, top); ctx.lineTo(x0, top + 8); ctx.fill();
          }
        }],
      },
    };
  }

  function hrChart(d, width) {
    const hr = d.heart_rate, rest = d.resting_hr, fc = d.forecast;
    const parts = [
      { t: hr.t, cols: [hr.mean, hr.min, hr.max] },
      { t: rest.t, cols: [rest.value, rest.baseline, rest.baseline_low, rest.baseline_high] },
    ];
    if (fc) parts.push({ t: fc.t, cols: [fc.p50, fc.p10, fc.p90] });
    const data = merge(parts);
    const series = [
      {},
      { label: "heart rate (hourly mean)", stroke: "#2563eb", width: 1 },
      { label: "min", stroke: "rgba(37,99,235,0.25)", width: 0.5 },
      { label: "max", stroke: "rgba(37,99,235,0.25)", width: 0.5 },
      { label: "resting", stroke: "#ea580c", width: 2, spanGaps: true, points: { show: true, size: 5, fill: "#ea580c" } },
      { label: "baseline", stroke: "#525252", width: 1.5, dash: [6, 4], spanGaps: true },
      { label: "baseline low", stroke: "rgba(82,82,82,0.2)", width: 0.5, spanGaps: true },
      { label: "baseline high", stroke: "rgba(82,82,82,0.2)", width: 0.5, spanGaps: true },
    ];
    const bands = [{ series: [3, 2], fill: "rgba(37,99,235,0.10)" }, { series: [7, 6], fill: "rgba(82,82,82,0.10)" }];
    if (fc) {
      series.push({ label: "forecast p50 (" + fc.model_version + ")", stroke: "#7c3aed", width: 2, dash: [3, 3], spanGaps: true },
                  { label: "forecast p10", stroke: "rgba(124,58,237,0.3)", width: 0.5, spanGaps: true },
                  { label: "forecast p90", stroke: "rgba(124,58,237,0.3)", width: 0.5, spanGaps: true });
      bands.push({ series: [10, 9], fill: "rgba(124,58,237,0.15)" });
    }
    const opts = {
      width, height: 320, series, bands,
      scales: { x: { time: true } },
      axes: [{}, { label: "beats/min", size: 50 }],
      legend: { live: true },
      plugins: [alertMarkers(d.alerts)],
    };
    return new uPlot(opts, data, document.getElementById("chart-hr"));
  }

  function barChart(el, t, values, label, color, unit, refLine) {
    const width = el.clientWidth || 400;
    const opts = {
      width, height: 180,
      series: [{}, { label, stroke: color, fill: color + "99", paths: uPlot.paths.bars({ size: [0.7, 40] }), points: { show: false } }],
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(hi, refLine || 0) * 1.1 || 1] } },
      axes: [{}, { label: unit, size: 50 }],
      hooks: refLine ? { draw: [u => {
        const y = u.valToPos(refLine, "y", true), ctx = u.ctx;
        ctx.save(); ctx.strokeStyle = "#16a34a"; ctx.setLineDash([5, 4]); ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke(); ctx.restore();
      }] } : {},
    };
    return new uPlot(opts, [t, values], el);
  }

  function draw(d) {
    plots.forEach(p => p.destroy());
    plots = [];
    const width = document.getElementById("chart-hr").clientWidth || 900;
    plots.push(hrChart(d, width));
    const sleepEl = document.getElementById("chart-sleep"), stepsEl = document.getElementById("chart-steps");
    plots.push(barChart(sleepEl, d.sleep.t, d.sleep.asleep.map(m => m == null ? null : +(m / 60).toFixed(2)),
                        "asleep (h)", "#0d9488", "hours", 7));
    plots.push(barChart(stepsEl, d.steps.t, d.steps.value, "steps", "#9333ea", "steps"));
    const n = d.heart_rate.t.length;
    status.textContent = n ? `${n} hourly points, ${d.alerts.length} alerts, ` +
      (d.forecast ? `forecast ${d.forecast.model_version}` : "no forecast yet") : "No heart-rate data in this range.";
    root.dataset.ready = "1";
    root.dataset.points = String(n);
    root.dataset.alerts = String(d.alerts.length);
  }

  function load(days) {
    root.dataset.ready = "0";
    fetch(root.dataset.url + "?days=" + days, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(r => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(draw)
      .catch(e => { status.textContent = "Charts could not be loaded (" + e.message + ")."; root.dataset.ready = "error"; });
  }

  const select = document.getElementById("days");
  select.addEventListener("change", () => load(select.value));
  load(select.value);
})();
