// The console's only script: live parts of a page refresh themselves, and "select all" checkboxes.
// Pages work without it (every link and form is plain HTML); it only saves reloading.
"use strict";

function refreshLive(element) {
  const every = Number(element.dataset.every || "3000");
  const tick = async () => {
    if (document.hidden) { return schedule(); }
    try {
      const response = await fetch(element.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.redirected || !response.ok) { return schedule(every * 4); }
      element.innerHTML = await response.text();
      if (element.querySelector("[data-settled]")) { return; }  // nothing left to change
    } catch (error) {
      console.warn("live refresh failed", error);
    }
    schedule();
  };
  const schedule = (delay) => window.setTimeout(tick, delay || every);
  schedule();
}

function selectAll(box) {
  box.addEventListener("change", () => {
    for (const item of box.form.querySelectorAll(`input[type=checkbox][name="${box.dataset.selectAll}"]:not(:disabled)`)) {
      item.checked = box.checked;
    }
  });
}

document.querySelectorAll("[data-live]").forEach(refreshLive);
document.querySelectorAll("[data-select-all]").forEach(selectAll);
