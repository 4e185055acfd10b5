// review.js: the room's tools for reading back — the timeline filter, and pins
// marked as their events arrive. Like live.js it changes nothing on its own:
// a pin shows only when the server's `event_pinned` event reaches the page.

const room = document.getElementById("room");

// A pin or unpin that arrived live marks (or unmarks) the event it names,
// wherever that event is shown. Rows the server renders (the page, older
// pages, filtered results) already carry the state as of their rendering,
// so only live arrivals are applied, in the order they came.
function applyPins() {
  for (const pin of document.querySelectorAll("#timeline-list li.is-new[data-pin-target]:not([data-pin-applied])")) {
    pin.setAttribute("data-pin-applied", "");
    const seq = pin.dataset.pinTarget;
    const on = pin.dataset.pinState === "on";
    for (const row of document.querySelectorAll(`#event-${seq}, #match-${seq}`)) {
      row.classList.toggle("is-pinned", on);
      const button = row.querySelector(".pin-toggle");
      if (button) {
        button.textContent = on ? "Unpin" : "Pin";
        button.setAttribute("hx-vals", JSON.stringify({ pinned: on ? "false" : "true" }));
      }
    }
  }
}

// The filter shows its matches in place of the live timeline while any filter is set.
function wireFilter() {
  const form = document.getElementById("timeline-filter");
  if (!form) return;
  const results = document.getElementById("timeline-results-panel");
  const scroller = document.getElementById("timeline-scroll");
  const update = () => {
    const active = ["type", "actor", "q"].some((name) => (form.elements[name]?.value || "").trim() !== "");
    results.hidden = !active;
    scroller.hidden = active;
  };
  form.addEventListener("change", update);
  form.addEventListener("input", update);
  form.addEventListener("submit", (event) => event.preventDefault());
  update();
}

for (const button of document.querySelectorAll("[data-print]")) button.addEventListener("click", () => window.print());

// The replay slider reaches the newest event the page has; its number follows the thumb.
function wireReplay() {
  const slider = document.getElementById("replay-seq");
  if (!slider) return;
  const output = document.getElementById("replay-seq-out");
  const atEnd = () => Number(slider.value) === Number(slider.max);
  slider.addEventListener("input", () => (output.textContent = slider.value));
  document.addEventListener("live:synced", () => {
    const newest = Number(document.getElementById("timeline-list").lastElementChild?.dataset.seq || slider.max);
    const follow = atEnd();
    slider.max = String(Math.max(Number(slider.max), newest));
    if (follow) {
      slider.value = slider.max;
      output.textContent = slider.value;
    }
  });
}

if (room) {
  document.addEventListener("live:synced", applyPins);
  wireFilter();
  wireReplay();
}
