// room_edit.js: the room's rename editor and its resolve dialog. Like the rest
// of the page it changes nothing shown on its own: the new title or status
// appears when the server's `incident:updated` brings the room's partials.

const room = document.getElementById("room");

// --- Rename: an in-place editor under the title -------------------------------------

function wireTitleEditor() {
  const form = document.getElementById("title-editor");
  const button = document.getElementById("title-edit");
  if (!form || !button) return;
  const input = document.getElementById("title-input");
  const close = () => {
    form.hidden = true;
    button.hidden = false;
    button.focus();
  };
  button.addEventListener("click", () => {
    input.value = document.getElementById("live-title")?.dataset.title ?? "";
    document.getElementById("err-title").replaceChildren();
    form.hidden = false;
    button.hidden = true;
    input.focus();
    input.select();
  });
  document.getElementById("title-cancel").addEventListener("click", close);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt === form && event.detail.successful) close();
  });
}

// --- Resolve: a dialog asking for the resolution note, listing the open items -------------

function wireResolveDialog() {
  const dialog = document.getElementById("resolve-dialog");
  if (!dialog) return;
  const form = document.getElementById("resolve-form");
  // The button is re-rendered with the status partial, so listen on the page, not on it.
  document.addEventListener("click", (event) => {
    const opener = event.target.closest?.("[data-resolve-open]");
    if (!opener || dialog.open) return;
    document.getElementById("err-resolve").replaceChildren();
    dialog.showModal();
    document.getElementById("resolution-input").focus();
  });
  document.getElementById("resolve-cancel").addEventListener("click", () => dialog.close());
  document.body.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt === form && event.detail.successful) dialog.close();
  });
  // Someone else resolved it meanwhile: there is nothing left to confirm here.
  document.addEventListener("live:synced", () => {
    if (dialog.open && document.getElementById("live-status")?.dataset.status === "resolved") dialog.close();
  });
}

if (room) {
  wireTitleEditor();
  wireResolveDialog();
}
