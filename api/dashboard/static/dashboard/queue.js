/* The alert queue's small behaviours (no inline script: the page can run under a strict
 * Content-Security-Policy). htmx replaces the rows every few seconds; this file keeps
 * what the nurse chose across those refreshes and across a reload:
 * - the snooze length picked on a row (per alert, for this browser tab);
 * - the alerts ticked for bulk acknowledge;
 * - the filters, search and sort (in the address and in localStorage; an address
 *   without them gets the last ones back). */
(function () {
  "use strict";
  const FILTERS = "healthstream.queue.filters";
  const SNOOZE = "healthstream.queue.snooze";
  const form = document.getElementById("filters");
  const bulk = document.getElementById("bulk");
  const rows = document.getElementById("queue-rows");
  if (!form || !rows) return;

  function read(store, key, fallback) {
    try { return JSON.parse(store.getItem(key)) ?? fallback; } catch (e) { return fallback; }
  }

  // ---- filters and sort survive a reload
  function filterQuery() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) { if (v !== "") params.append(k, v); }
    return params.toString();
  }
  if (!window.location.search) {
    const saved = read(localStorage, FILTERS, "");
    if (saved) { window.location.replace("?" + saved); return; }
  }
  function remember() {
    const q = filterQuery();
    localStorage.setItem(FILTERS, JSON.stringify(q));
    history.replaceState(null, "", q ? "?" + q : window.location.pathname);
    const next = bulk && bulk.querySelector("input[name=next]");
    if (next) next.value = window.location.pathname + (q ? "?" + q : "");
  }
  form.addEventListener("change", remember);
  form.addEventListener("input", remember);

  // ---- snooze choice and ticked alerts survive the refresh
  const snooze = read(sessionStorage, SNOOZE, {});
  const picked = new Set();
  const count = document.getElementById("picked-count");

  function restore() {
    rows.querySelectorAll("select[name=hours][data-alert]").forEach(sel => {
      const v = snooze[sel.dataset.alert];
      if (v && sel.querySelector(`option[value="${v}"]`)) sel.value = v;
    });
    rows.querySelectorAll("input[name=alert]").forEach(box => { box.checked = picked.has(box.value); });
    if (count) count.textContent = `(${picked.size})`;
  }
  rows.addEventListener("change", ev => {
    const t = ev.target;
    if (t.matches("select[name=hours][data-alert]")) {
      snooze[t.dataset.alert] = t.value;
      sessionStorage.setItem(SNOOZE, JSON.stringify(snooze));
    } else if (t.matches("input[name=alert]")) {
      if (t.checked) picked.add(t.value); else picked.delete(t.value);
      if (count) count.textContent = `(${picked.size})`;
    }
  });
  const all = document.getElementById("pick-all");
  if (all) all.addEventListener("change", () => {
    rows.querySelectorAll("input[name=alert]").forEach(box => {
      box.checked = all.checked;
      if (all.checked) picked.add(box.value); else picked.delete(box.value);
    });
    if (count) count.textContent = `(${picked.size})`;
  });
  // htmx swaps rows in (the poll, a filter change, an action on one row): put the
  // choices back as soon as the new rows are in the document
  new MutationObserver(restore).observe(rows, { childList: true, subtree: true });
  restore();
})();
