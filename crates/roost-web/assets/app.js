// Roost web UI: the little the pages need beyond HTML. No inline script (the CSP forbids it).
"use strict";

// Ask before a destructive form is sent.
document.addEventListener("submit", (event) => {
  const text = event.target.dataset && event.target.dataset.confirm;
  if (text && !window.confirm(text)) event.preventDefault();
});

// Show Unix times in the reader's own time zone.
for (const el of document.querySelectorAll("time[data-unix]")) {
  const secs = Number(el.dataset.unix);
  if (secs > 0) {
    const d = new Date(secs * 1000);
    el.dateTime = d.toISOString();
    el.textContent = d.toLocaleString();
  }
}

// While an update runs, follow its progress.
const progress = document.querySelector("[data-poll]");
if (progress) {
  const bar = progress.querySelector("progress");
  const text = progress.querySelector("[data-progress-text]");
  const poll = async () => {
    try {
      const r = await fetch(progress.dataset.poll, { credentials: "same-origin" });
      if (!r.ok) return;
      const s = await r.json();
      const p = s.progress || {};
      bar.max = Math.max(p.bytes_total || 0, 1);
      bar.value = p.bytes || 0;
      text.textContent = `${p.bytes || 0} of ${p.bytes_total || 0} bytes, ${p.paths || 0} of ${p.paths_total || 0} store paths`;
      if (s.pending) setTimeout(poll, 2000);
    } catch (_) {
      setTimeout(poll, 5000);
    }
  };
  poll();
}
