// editing.js: the room's drafts and the summary's concurrent edits.
//
// - Drafts (the note being written, the summary being edited) are kept per
//   user and incident in localStorage until they are sent, and put back after
//   a reload; leaving with an unsaved summary asks first.
// - A summary save refused because someone changed it meanwhile (a 409, see
//   ui.js) shows the latest and the writer's text side by side with a word
//   diff (jsdiff, window.Diff), and the writer merges (edits a merged text) or
//   replaces on purpose: either is sent with the current version and says
//   which in `resolved_conflict`.
// - The person whose summary is replaced is told: a summary_change by someone
//   else whose `from` is the text this user last saved shows a notice with the diff.
// Text only via textContent.

const room = document.getElementById("room");
const form = document.getElementById("summary-editor");
const input = document.getElementById("summary-input");
const version = document.getElementById("summary-version");
const resolution = document.getElementById("summary-resolved-conflict");
const note = document.getElementById("note-body");
const panel = document.getElementById("summary-conflict");
const notice = document.getElementById("summary-replaced");

const me = Number(room?.dataset.user);
const incident = Number(room?.dataset.incident);
const key = (name) => `incident-platform:v1:${me}:${incident}:${name}`;
// Browsers send a textarea's line breaks as CRLF; compare texts without caring.
const plain = (text) => (text ?? "").replace(/\r\n/g, "\n");

function load(name) {
  try {
    return JSON.parse(localStorage.getItem(key(name)));
  } catch {
    return null;
  }
}

function store(name, value) {
  try {
    if (value === null) localStorage.removeItem(key(name));
    else localStorage.setItem(key(name), JSON.stringify(value));
  } catch {
    // Storage full or refused (a private window): the draft lives only in the page.
  }
}

const shown = () => document.getElementById("live-summary");
// Shown, not just unhidden: a resolved incident's editor is hidden by CSS (.open-only).
const rendered = (node) => node !== null && node.getClientRects().length > 0;
const editorOpen = () => form !== null && !form.hidden && rendered(form);
const unsaved = () => editorOpen() && plain(input.value) !== plain(form.dataset.base);

// --- Diffs ----------------------------------------------------------------------------

// Word diff of `from` → `to` into two boxes: what `from` had that `to` lacks is
// struck out in the first, what `to` adds is marked in the second.
function renderDiff(fromBox, toBox, from, to) {
  const parts = window.Diff ? window.Diff.diffWords(plain(from), plain(to)) : [{ value: plain(to), added: true }];
  const side = (keep, tag) =>
    parts
      .filter((part) => !part[keep])
      .map((part) => {
        const changed = part.added || part.removed;
        const node = document.createElement(changed ? tag : "span");
        node.textContent = part.value;
        return node;
      });
  fromBox.replaceChildren(...side("added", "del"));
  toBox.replaceChildren(...side("removed", "ins"));
}

// Three-way merge: the writer's change (base → mine) applied to the latest, when it applies cleanly.
// No context lines, so edits to neighbouring lines merge; edits to the same line do not.
function merged(base, mine, theirs) {
  if (!window.Diff) return null;
  const patch = window.Diff.createPatch("summary", plain(base), plain(mine), undefined, undefined, { context: 0 });
  const result = window.Diff.applyPatch(plain(theirs), patch);
  return result === false ? null : result;
}

// --- The summary conflict ---------------------------------------------------------------

let lastChangeBy = null; // who saved the summary last, as heard on the socket

function showConflict() {
  const latest = shown();
  const mine = input.value;
  document.getElementById("conflict-by").textContent = lastChangeBy ? `by ${lastChangeBy}` : "";
  renderDiff(
    document.getElementById("conflict-theirs"),
    document.getElementById("conflict-mine"),
    latest.dataset.summary,
    mine,
  );
  panel.dataset.version = latest.dataset.version;
  panel.dataset.theirs = latest.dataset.summary;
  panel.querySelector(".conflict-actions").hidden = false;
  document.getElementById("conflict-hint").textContent = "";
  panel.hidden = false;
  resolution.value = ""; // the version stays the one written against: a plain Save is refused again
  document.getElementById("conflict-merge").focus();
}

function hideConflict() {
  if (!panel) return;
  panel.hidden = true;
  resolution.value = "";
}

function wireConflict() {
  if (!form || !panel) return;
  form.addEventListener("summary:conflict", showConflict);
  // Merging: the editor holds the merged text (the writer's change applied to
  // the latest where that is clean, else the writer's text) for them to edit.
  document.getElementById("conflict-merge").addEventListener("click", () => {
    const theirs = panel.dataset.theirs;
    input.value = merged(form.dataset.base, input.value, theirs) ?? input.value;
    form.dataset.base = theirs;
    version.value = panel.dataset.version;
    resolution.value = "merge";
    panel.querySelector(".conflict-actions").hidden = true;
    document.getElementById("conflict-hint").textContent = "Edit the merged text below, then Save.";
    input.focus();
    saveDraft();
  });
  document.getElementById("conflict-replace").addEventListener("click", () => {
    form.dataset.base = panel.dataset.theirs;
    version.value = panel.dataset.version;
    resolution.value = "replace";
    form.requestSubmit();
  });
  document.getElementById("conflict-keep").addEventListener("click", () => {
    hideConflict();
    store("summary", null);
    document.getElementById("summary-cancel").click();
  });
  form.addEventListener("summary:closed", () => {
    hideConflict();
    panel.querySelector(".conflict-actions").hidden = false;
    document.getElementById("conflict-hint").textContent = "";
  });
}

// --- Being told that someone replaced your summary -----------------------------------------

function wireReplacedNotice() {
  document.addEventListener("live:event", (event) => {
    const change = event.detail;
    if (change.type !== "summary_change") return;
    lastChangeBy = change.actor?.username ?? null;
    const saved = load("summary-saved");
    if (saved === null || change.actor?.id === me || plain(change.data?.from) !== plain(saved)) return;
    store("summary-saved", null); // told once
    if (!notice) return;
    const how = { merge: "merged their edit into", replace: "replaced" }[change.data?.resolved_conflict] ?? "changed";
    document.getElementById("replaced-text").textContent = `${change.actor.username} ${how} your summary`;
    renderDiff(
      document.getElementById("replaced-from"),
      document.getElementById("replaced-to"),
      change.data.from,
      change.data.to,
    );
    notice.hidden = false;
  });
  document.getElementById("replaced-dismiss")?.addEventListener("click", () => {
    notice.hidden = true;
  });
}

// --- Drafts -----------------------------------------------------------------------------

function saveDraft() {
  if (!editorOpen()) return;
  store("summary", { text: input.value, base: form.dataset.base ?? "", version: version.value });
}

function wireDrafts() {
  if (note) {
    const draft = load("note");
    if (typeof draft === "string" && draft && !note.value) note.value = draft;
    note.addEventListener("input", () => store("note", note.value.trim() ? note.value : null));
  }
  if (form) {
    const draft = load("summary");
    const edit = document.getElementById("summary-edit");
    if (draft && typeof draft.text === "string" && rendered(edit)) {
      edit.click(); // opens the editor as a person would
      input.value = draft.text;
      version.value = draft.version;
      form.dataset.base = draft.base;
      form.dispatchEvent(new CustomEvent("editing:changed", { bubbles: true }));
    }
    input.addEventListener("input", saveDraft);
    document.getElementById("summary-cancel").addEventListener("click", () => store("summary", null));
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") store("summary", null);
    });
  }
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const { elt, successful } = event.detail;
    if (!successful) return;
    if (note && elt === note.form) store("note", null);
    if (form && elt === form) {
      store("summary", null);
      store("summary-saved", input.value);
      hideConflict();
    }
  });
  // Sent and refused drafts stay; only leaving with an unsaved summary asks first.
  window.addEventListener("beforeunload", (event) => {
    if (!unsaved()) return;
    event.preventDefault();
    event.returnValue = "";
  });
}

if (room) {
  wireConflict();
  wireReplacedNotice();
  wireDrafts();
}
