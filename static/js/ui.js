// ui.js: small page behaviours that need no server: local times, keyboard
// shortcuts, error slots, the in-place summary editor. Text only via textContent.

const SERVER_DOWN = "Could not reach the server — nothing was changed. Try again.";

// --- Times: the viewer's own zone, relative ages, the absolute time in a tooltip ---

const sameDay = (a, b) => a.toDateString() === b.toDateString();
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayAndClock = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

export function age(from, now = new Date()) {
  const minutes = Math.max(0, Math.floor((now - from) / 60000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return days === 1 ? "1 day" : `${days} days`;
}

function localiseTimes(scope) {
  const now = new Date();
  for (const node of scope.querySelectorAll("time[datetime]")) {
    const when = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) continue;
    node.title = full.format(when);
    if (node.hasAttribute("data-age")) node.textContent = age(when, now);
    else if (node.dataset.local === "time") node.textContent = (sameDay(when, now) ? clock : dayAndClock).format(when);
  }
}

// --- Status updates: the room's nudge and the list's mark, once an update is overdue ---
// The server renders when the next update is due (data-due-at: the last update, or the
// opening, plus the incident's cadence); whether that has passed is worked out here, as time passes.

export function overdueText(due, now = new Date()) {
  const late = now - due;
  if (late < 0) return null;
  return late < 60000 ? "less than a minute" : age(due, now);
}

function markOverdue(scope) {
  const now = new Date();
  for (const node of scope.querySelectorAll("[data-due-at]")) {
    const due = new Date(node.dataset.dueAt);
    const late = Number.isNaN(due.getTime()) ? null : overdueText(due, now);
    node.hidden = late === null;
    if (late !== null && node.dataset.overdue === "banner") {
      const text = node.querySelector(".update-due-text");
      const words = `Status update overdue by ${late}.`;
      if (text && text.textContent !== words) text.textContent = words;
    }
    node.closest("tr")?.classList.toggle("is-overdue", late !== null);
  }
}

// --- Forms: errors beside the control, resets, the summary editor -----------------

function errorSlot(detail) {
  const target = detail.target;
  return target && target.classList && target.classList.contains("error") ? target : null;
}

function wireHtmx() {
  // A form's controls are disabled while it is sent, which takes the focus away:
  // give it back afterwards (the note box stays ready for the next note).
  let focused = null;
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt.contains?.(document.activeElement)) focused = document.activeElement;
  });
  document.body.addEventListener("htmx:afterRequest", () => {
    const field = focused;
    focused = null;
    setTimeout(() => {
      if (field?.isConnected && !field.disabled && document.activeElement === document.body) field.focus();
    });
  });
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    const slot = errorSlot(event.detail);
    if (slot && event.detail.requestConfig?.verb !== "get") {
      slot.replaceChildren();
      delete slot.dataset.connectionError;
    }
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const { elt, successful, xhr } = event.detail;
    if (successful && elt.matches?.("form[data-reset-on-success]")) elt.reset();
    if (successful && elt.id === "summary-editor") closeSummaryEditor();
    if (xhr && xhr.status === 409) {
      if (elt.id === "summary-editor") elt.dataset.conflict = "true";
      document.dispatchEvent(new CustomEvent("live:resync"));
    }
  });
  // 4xx answers are swapped into the error slot by htmx (see htmx-config in base.html);
  // a 5xx or a network failure has no partial, so say so in words.
  const unreachable = (event) => {
    const slot = errorSlot(event.detail);
    const status = event.detail.xhr?.status ?? 0;
    if (slot && (status === 0 || status >= 500)) {
      slot.textContent = SERVER_DOWN;
      slot.dataset.connectionError = "";
    }
  };
  document.body.addEventListener("htmx:sendError", unreachable);
  document.body.addEventListener("htmx:responseError", unreachable);
  // Those errors came from the lost connection: they go when it is back (live.js says so).
  document.addEventListener("live:state", (event) => {
    if (event.detail.state !== "live") return;
    for (const slot of document.querySelectorAll(".error[data-connection-error]")) {
      slot.replaceChildren();
      delete slot.dataset.connectionError;
    }
  });
  htmx.onLoad((content) => {
    localiseTimes(content);
    markOverdue(content);
  });
}

function submitOnEnter() {
  document.addEventListener("keydown", (event) => {
    const field = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (!field.matches?.("textarea[data-submit-on-enter]")) return;
    event.preventDefault();
    if (field.value.trim()) field.form.requestSubmit();
  });
}

const editor = () => document.getElementById("summary-editor");

function openSummaryEditor() {
  const form = editor();
  const shown = document.getElementById("live-summary");
  if (!form || !shown) return;
  form.querySelector("#summary-input").value = shown.dataset.summary;
  form.querySelector("#summary-version").value = shown.dataset.version;
  form.dataset.base = shown.dataset.summary; // what the writer started from (a conflict compares with it)
  delete form.dataset.conflict;
  form.hidden = false;
  document.getElementById("summary-edit").hidden = true;
  form.querySelector("#summary-input").focus();
}

function closeSummaryEditor() {
  const form = editor();
  if (!form) return;
  form.hidden = true;
  const button = document.getElementById("summary-edit");
  button.hidden = false;
  button.focus();
  form.dispatchEvent(new CustomEvent("summary:closed", { bubbles: true }));
}

function wireSummaryEditor() {
  const form = editor();
  if (!form) return;
  document.getElementById("summary-edit").addEventListener("click", openSummaryEditor);
  document.getElementById("summary-cancel").addEventListener("click", closeSummaryEditor);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeSummaryEditor();
  });
  // After a conflict the latest summary is shown above the editor and the text
  // being written is kept. If the summary itself did not change (something else
  // did), saving again replaces nothing; if it did, editing.js shows both with a
  // diff and the writer merges or replaces on purpose.
  document.addEventListener("live:synced", () => {
    if (form.hidden || !form.dataset.conflict) return;
    delete form.dataset.conflict;
    const shown = document.getElementById("live-summary");
    const mine = form.querySelector("#summary-input").value;
    const same = (a, b) => a.replace(/\r\n/g, "\n") === b.replace(/\r\n/g, "\n");
    if (same(shown.dataset.summary, form.dataset.base ?? "") || same(shown.dataset.summary, mine)) {
      form.querySelector("#summary-version").value = shown.dataset.version;
      form.dataset.base = shown.dataset.summary;
    } else {
      form.dispatchEvent(new CustomEvent("summary:conflict", { bubbles: true }));
    }
  });
}

// --- Keyboard: `n` writes a note, `?` lists the shortcuts ----------------------------

function isTyping(target) {
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

function wireShortcuts() {
  const dialog = document.getElementById("shortcuts");
  const openShortcuts = () => dialog && !dialog.open && dialog.showModal();
  document.querySelectorAll("[data-shortcuts-open]").forEach((button) => button.addEventListener("click", openShortcuts));
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
    if (event.key === "?") {
      event.preventDefault();
      openShortcuts();
    } else if (event.key === "n") {
      const note = document.getElementById("note-body");
      if (note) {
        event.preventDefault();
        note.focus();
      }
    }
  });
}

wireHtmx();
submitOnEnter();
wireSummaryEditor();
wireShortcuts();
localiseTimes(document);
setInterval(() => localiseTimes(document), 30000);
markOverdue(document);
setInterval(() => markOverdue(document), 10000);
