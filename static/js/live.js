// live.js: the page's one WebSocket (docs/protocol.md) and what it keeps current.
//
// The server is the authority. This module never changes what the page shows
// from a user's action; it waits for the server's `incident:updated` and then
// asks the server for the room's partials (GET /incidents/<id>/partials/room
// ?after=<last seq shown>), which htmx swaps in by id. The timeline's last
// <li data-seq> is the last seq seen, so
//   - an update with seq <= that is ignored (already shown);
//   - an update that skips ahead (a gap) fetches everything after it, in order;
//   - after a reconnect, `incident:join` with `after` says what was missed.
// Only one fetch runs at a time and each asks for seq > what is shown, so no
// event is shown twice. Presence and focus come from the socket and are
// rendered with textContent (never innerHTML with user text).

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;
const OFFLINE_AFTER_MS = 30000; // failing this long: say offline (and keep trying)
const PING_EVERY_MS = 25000; // any reply proves the socket is alive
const PING_TIMEOUT_MS = 10000;
const FOCUS_RETRY_MS = 600; // after a focus:set refused as too fast

const LABELS = {
  connecting: "◌ connecting…",
  live: "● live",
  reconnecting: "◌ reconnecting…",
  offline: "✕ offline — changes are not being sent",
  signedOut: "✕ offline — sign in again",
};

// Each user keeps one colour everywhere; all have AA contrast with white text.
const USER_COLOURS = ["#b91c1c", "#c2410c", "#a16207", "#15803d", "#0f766e", "#1d4ed8", "#6d28d9", "#be185d"];

export function colourFor(userId) {
  return USER_COLOURS[Math.abs(Number(userId) || 0) % USER_COLOURS.length];
}

export function initials(user) {
  const name = (user.display_name || user.username || "?").trim();
  const words = name.split(/[\s._-]+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : name.slice(0, 2);
  return letters.toUpperCase();
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// People in a room as initials in circles (name and role in a tooltip); more than `shown` fold into +N.
// The room's header and the list's Viewers column both draw them here, so they look the same.
export function renderViewers(list, viewers, shown = 5, total = viewers.length) {
  const first = viewers.slice(0, shown);
  const items = first.map((user) => {
    const item = element("li", "avatar", initials(user));
    const name = user.display_name || user.username;
    item.title = user.role ? `${name} (${user.role})` : name;
    item.style.setProperty("--user-colour", colourFor(user.id));
    item.dataset.user = user.id;
    item.append(element("span", "visually-hidden", ` ${item.title}`));
    return item;
  });
  if (total > first.length) {
    const rest = viewers.slice(first.length);
    const more = element("li", "avatar more", `+${total - first.length}`);
    more.title = rest.length ? rest.map((user) => user.username).join(", ") : `${total - first.length} more`;
    items.push(more);
  }
  list.replaceChildren(...items);
  list.setAttribute("aria-label", `${total} here now`);
}

// A room's viewers as the server last said, kept current from constant-size presence pushes.
// Each push says the state, at its `version`, of the users it names, and is complete for a
// client that already has `since`; a client that is further behind asks for the whole list.
export class Presence {
  constructor() {
    this.users = new Map(); // id -> user
    this.version = 0;
  }

  reset(viewers, version) {
    this.users = new Map(viewers.map((user) => [user.id, user]));
    this.version = version || 0;
  }

  // Apply a presence:joined/left push; false if the list must be asked for again.
  apply(message) {
    if (message.version < this.version) return true; // older than what we have
    if (message.since > this.version) return false; // we missed changes in between
    const users = message.users || (message.user ? [message.user] : []);
    for (const user of users) {
      if (message.type === "presence:joined") this.users.set(user.id, user);
      else this.users.delete(user.id);
    }
    this.version = message.version;
    return true;
  }

  get list() {
    return [...this.users.values()].sort((a, b) =>
      a.username === b.username ? a.id - b.id : a.username < b.username ? -1 : 1,
    );
  }
}

// --- The socket ------------------------------------------------------------------

export class LiveSocket {
  constructor({ onOpen, onMessage, indicator }) {
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.indicator = indicator;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.failingSince = null;
    this.timer = null;
    this.pingTimer = null;
    this.stopped = false;
    this.joined = false; // the socket is open and onOpen (the join) succeeded
    // The browser's word on the network is a hint, not the truth: check the socket itself.
    window.addEventListener("online", () => (this.isOpen ? this.probe() : this.retryNow()));
    window.addEventListener("offline", () => {
      this.setStatus("offline");
      if (this.isOpen) this.probe();
    });
    // A page request the server answered: it is back, so do not wait out the backoff.
    document.addEventListener("htmx:afterRequest", (event) => {
      const status = event.detail.xhr?.status ?? 0;
      if (status > 0 && status < 500) this.retryNow();
    });
  }

  get url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/`;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // The indicator says what the socket does now; the page hears each change
  // (`live:state`), so errors that came from a lost connection can clear with it.
  setStatus(state) {
    if (!this.indicator || this.indicator.dataset.state === state) return;
    this.indicator.dataset.state = state;
    this.indicator.textContent = LABELS[state];
    document.dispatchEvent(new CustomEvent("live:state", { detail: { state } }));
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      document.dispatchEvent(new CustomEvent("live:open"));
      this.keepAlive();
      Promise.resolve(this.onOpen()).then(
        () => {
          if (ws !== this.ws) return;
          this.attempt = 0;
          this.failingSince = null;
          this.joined = true;
          this.setStatus("live");
        },
        (error) => {
          // The join was refused (say Redis or the database is briefly down): a
          // socket that is open but not in its room would miss every change, so
          // close it and let the backoff above try again.
          console.warn("live: on open failed; reconnecting", error);
          if (ws === this.ws) ws.close(4000, "join failed");
        },
      );
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => this.closed(ws, event.code));
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    this.heard();
    if ((message.type === "ack" || message.type === "error") && this.pending.has(message.id)) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.type === "ack") resolve(message);
      else reject(Object.assign(new Error(message.message), { code: message.code }));
      return;
    }
    // Messages for the whole page (notification:new, to the bell in bell.js) go to whoever listens.
    if (message.type === "notification:new") document.dispatchEvent(new CustomEvent("live:notification", { detail: message }));
    this.onMessage(message);
  }

  // Anything the server sends on a joined socket proves it works, whatever was said before.
  heard() {
    if (this.joined && this.isOpen) {
      this.failingSince = null;
      this.setStatus("live");
    }
  }

  // Send one client message; resolves with its ack, rejects with its error (or a lost socket).
  request(type, fields = {}) {
    if (!this.isOpen) return Promise.reject(new Error("not connected"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type, id, ...fields }));
    });
  }

  keepAlive() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.probe(), PING_EVERY_MS);
  }

  // Ask the server for any reply: one proves the socket alive (see heard), none in time closes it.
  probe() {
    const ws = this.ws;
    if (!this.isOpen) return;
    const timeout = setTimeout(() => ws.close(4000, "no reply to ping"), PING_TIMEOUT_MS);
    // An error reply is a reply too: the socket is alive either way.
    this.request("ping").catch(() => {}).finally(() => clearTimeout(timeout));
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    clearInterval(this.pingTimer);
    this.joined = false;
    for (const { reject } of this.pending.values()) reject(new Error("connection lost"));
    this.pending.clear();
    this.ws = null;
    if (code === 4401) {
      // The session is gone; retrying cannot help until the person signs in again.
      this.stopped = true;
      this.setStatus("signedOut");
      return;
    }
    this.failingSince ??= Date.now();
    const offline = !navigator.onLine || Date.now() - this.failingSince > OFFLINE_AFTER_MS;
    this.setStatus(offline ? "offline" : "reconnecting");
    // Exponential backoff with jitter, so a restarted server is not hit by every page at once.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.stopped || this.ws !== null) return;
    this.attempt = 0;
    this.connect();
  }
}

// --- The incident room -------------------------------------------------------------

function startRoom(root) {
  const incident = Number(root.dataset.incident);
  const me = Number(root.dataset.user);
  const partialUrl = root.dataset.partialUrl;
  const timeline = document.getElementById("timeline-list");
  const scroller = document.getElementById("timeline-scroll");
  const pill = document.getElementById("new-events-pill");
  const viewersList = document.getElementById("viewers");
  const presence = new Presence();

  const lastSeq = () => Number(timeline.lastElementChild?.dataset.seq || 0);
  let wanted = 0; // the highest seq the server has told us exists
  let syncing = false;
  let unseen = 0;
  let myFocus = null;
  const focus = new Map(); // user id -> {user, section}

  // -- Timeline position and the "N new events" pill
  const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 24;
  const toBottom = (smooth) => {
    const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    scroller.scrollTo({ top: scroller.scrollHeight, behavior: smooth && !reduce ? "smooth" : "auto" });
  };
  const showPill = () => {
    pill.hidden = unseen === 0;
    pill.textContent = `${unseen} new event${unseen === 1 ? "" : "s"} ↓`;
  };
  pill.addEventListener("click", () => {
    unseen = 0;
    showPill();
    toBottom(true);
  });
  scroller.addEventListener("scroll", () => {
    if (unseen && atBottom()) {
      unseen = 0;
      showPill();
    }
  });
  toBottom(false);

  // -- Fetching what the server has: one fetch at a time, always for seq > what is shown
  async function sync() {
    if (syncing) return; // the running loop sees the raised `wanted`
    syncing = true;
    try {
      for (;;) {
        const before = lastSeq();
        const wasAtBottom = atBottom();
        await htmx.ajax("GET", `${partialUrl}?after=${before}`, { source: root, swap: "none" });
        const added = timeline.querySelectorAll("li.is-new:not([data-counted])");
        added.forEach((item) => item.setAttribute("data-counted", ""));
        if (added.length) {
          if (wasAtBottom) toBottom(true);
          else {
            unseen += added.length;
            showPill();
          }
        }
        document.dispatchEvent(new CustomEvent("live:synced"));
        if (lastSeq() >= wanted || lastSeq() === before) break; // caught up, or nothing more to get
      }
    } catch (error) {
      console.warn("live: could not fetch the room", error);
    } finally {
      syncing = false;
    }
  }

  function updated(message) {
    if (message.seq <= lastSeq()) return; // already shown
    if (message.seq > Math.max(wanted, lastSeq()) + 1) {
      console.info(`live: gap before seq ${message.seq}; fetching everything after ${lastSeq()}`);
    }
    wanted = Math.max(wanted, message.seq);
    sync();
  }

  // -- Who is working where
  function renderFocus() {
    for (const section of root.querySelectorAll("[data-focus-section]")) {
      const name = section.dataset.focusSection;
      const others = [...focus.values()].filter((entry) => entry.section === name && entry.user.id !== me);
      const marker = section.querySelector(".focus-marker");
      if (marker) {
        marker.replaceChildren(
          ...others.map((entry) => {
            const tag = element("span", "focus-tag", `✎ ${entry.user.username} editing`);
            tag.style.setProperty("--user-colour", colourFor(entry.user.id));
            return tag;
          }),
        );
      }
      section.classList.toggle("has-focus-marker", others.length > 0);
      if (others.length) section.style.setProperty("--focus-colour", colourFor(others[0].user.id));
    }
  }

  function setFocus(entries) {
    focus.clear();
    for (const entry of entries || []) if (entry.section) focus.set(entry.user.id, entry);
    renderFocus();
  }

  // "✎ carol editing" means an editor is open or a draft is typed in the section
  // she is in, not that a control merely has focus; it clears on save, cancel or blur.
  const TYPED = "textarea, input[type=text], input:not([type])";
  const isEditing = (section) =>
    section.querySelector("form.editor:not([hidden])") !== null ||
    [...section.querySelectorAll(TYPED)].some((field) => field.value !== field.defaultValue && !field.closest("[hidden]"));
  function editingSection() {
    const section = root.contains(document.activeElement)
      ? document.activeElement.closest("[data-focus-section]")
      : null;
    return section && isEditing(section) ? section.dataset.focusSection : null;
  }
  let focusTimer = null;
  function focusChanged() {
    // Settle first: moving between two controls is a focusout then a focusin,
    // a swapped control is put back by htmx right after, and a reset form empties after its event.
    clearTimeout(focusTimer);
    focusTimer = setTimeout(() => {
      const section = editingSection();
      if (section === myFocus) return;
      myFocus = section;
      if (!live.isOpen) return;
      live.request("focus:set", { incident, section }).catch((error) => {
        // Refused for going too fast (the server allows a burst, then 2 a second): the others
        // still see the old one, so say the newest again shortly rather than leave it standing.
        if (error.code !== "rate_limited" || myFocus !== section) return;
        myFocus = undefined;
        setTimeout(focusChanged, FOCUS_RETRY_MS);
      });
    }, 60);
  }
  for (const type of ["focusin", "focusout", "input", "reset"]) root.addEventListener(type, focusChanged);
  document.addEventListener("editing:changed", focusChanged);

  // -- The socket
  const live = new LiveSocket({
    indicator: document.getElementById("live-indicator"),
    async onOpen() {
      const shown = lastSeq();
      const ack = await live.request("incident:join", { incident, after: shown });
      // What happened while this page was away is heard as if it had arrived live.
      for (const event of ack.events || []) {
        if (event.seq > shown) document.dispatchEvent(new CustomEvent("live:event", { detail: event }));
      }
      presence.reset(ack.viewers || [], ack.presence_version);
      renderViewers(viewersList, presence.list);
      setFocus(ack.focus);
      const newest = Math.max(ack.version || 0, ack.state?.version || 0, ...(ack.events || []).map((e) => e.seq));
      wanted = Math.max(wanted, newest);
      if (newest > lastSeq()) sync();
      if (myFocus) live.request("focus:set", { incident, section: myFocus }).catch(() => {});
    },
    onMessage(message) {
      if (message.incident !== incident) return;
      switch (message.type) {
        case "incident:updated":
          updated(message);
          if (message.event) document.dispatchEvent(new CustomEvent("live:event", { detail: message.event }));
          break;
        case "presence:joined":
        case "presence:left":
          if (message.type === "presence:left") for (const user of message.users || []) focus.delete(user.id);
          if (!presence.apply(message)) refetchPresence();
          renderViewers(viewersList, presence.list);
          renderFocus();
          break;
        case "focus:updated":
          if (message.section) focus.set(message.user.id, message);
          else focus.delete(message.user.id);
          renderFocus();
          break;
      }
    },
  });
  let refetching = false;
  async function refetchPresence() {
    if (refetching) return;
    refetching = true;
    try {
      const ack = await live.request("presence:get", { incident });
      presence.reset(ack.viewers || [], ack.presence_version);
      setFocus(ack.focus);
      renderViewers(viewersList, presence.list);
    } catch (error) {
      console.warn("live: could not fetch who is here", error);
    } finally {
      refetching = false;
    }
  }

  // A 409 from a form: show the latest even if its event is already here.
  document.addEventListener("live:resync", () => {
    wanted = Math.max(wanted, lastSeq() + 1);
    sync();
  });
  live.connect();
}

// --- The incident list ----------------------------------------------------------
//
// Rows are re-fetched from the server (GET rows URL, same filters) whenever an
// incident is created or changes. The Viewers column comes from the socket: the
// subscribe ack gives the viewers of the rows shown, `incident:viewers` each
// change after, and rows fetched later are asked for with another subscribe.

const LIST_VIEWERS_SHOWN = 3; // a table cell has room for fewer circles than the room's header

function startList(page) {
  const rowsUrl = page.dataset.rowsUrl;
  const viewers = new Map(); // incident id -> {users (the first few), count, version}, as the server last said
  let fetching = false;
  let again = false;
  let opened = 0;

  const cells = () => [...document.querySelectorAll("#incident-rows [data-viewers-of]")];

  function paint(cell) {
    const known = viewers.get(Number(cell.dataset.viewersOf));
    if (known === undefined) return; // not heard yet: keep what is shown
    if (!known.count) {
      cell.replaceChildren(element("span", "muted", "—"));
      return;
    }
    const list = element("ul", "viewers");
    renderViewers(list, known.users, LIST_VIEWERS_SHOWN, known.count);
    cell.replaceChildren(list);
  }

  // Keep the newest word on each room: pushes from several server processes may cross.
  function heard(id, entry) {
    const old = viewers.get(id);
    if (old === undefined || entry.version >= old.version) viewers.set(id, entry);
  }

  // Subscribe (again), asking for the viewers of every row not heard of yet;
  // after a (re)connect nothing is known, so that is every row.
  async function subscribe({ always }) {
    const unknown = cells()
      .map((cell) => Number(cell.dataset.viewersOf))
      .filter((id) => !viewers.has(id));
    if (!always && !unknown.length) return;
    const ack = await live.request("incidents:subscribe", { incidents: unknown });
    for (const [id, users] of Object.entries(ack.viewers || {})) {
      heard(Number(id), { users, count: ack.counts?.[id] ?? users.length, version: ack.versions?.[id] ?? 0 });
    }
    cells().forEach(paint);
  }

  // New rows arrive showing "—": paint what is known before the browser draws them.
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.target.id === "incident-rows") cells().forEach(paint);
  });

  async function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      do {
        again = false;
        const before = new Set([...document.querySelectorAll("#incident-rows tr[id]")].map((row) => row.id));
        await htmx.ajax("GET", rowsUrl + location.search, { target: "#incident-rows", swap: "outerHTML" });
        for (const row of document.querySelectorAll("#incident-rows tr[id]")) {
          if (!before.has(row.id)) row.classList.add("is-new");
        }
      } while (again);
      if (live.isOpen) await subscribe({ always: false });
    } catch (error) {
      console.warn("live: could not fetch the list", error);
    } finally {
      fetching = false;
    }
  }

  const live = new LiveSocket({
    indicator: document.getElementById("live-indicator"),
    async onOpen() {
      viewers.clear(); // what was heard before the socket dropped may be stale
      await subscribe({ always: true });
      if (opened++ > 0) refresh(); // a reconnect: changes may have been missed
    },
    onMessage(message) {
      if (message.type === "incident:created" || message.type === "incident:listChanged") refresh();
      else if (message.type === "incident:viewers") {
        heard(message.incident, {
          users: message.viewers || [],
          count: message.count ?? (message.viewers || []).length,
          version: message.version ?? 0,
        });
        const cell = document.querySelector(`#incident-rows [data-viewers-of="${Number(message.incident)}"]`);
        if (cell) paint(cell);
      }
    },
  });
  live.connect();
}

// A page with neither still keeps a socket for the bell: the user's notifications arrive on it.
function startBare() {
  new LiveSocket({ indicator: null, onOpen() {}, onMessage() {} }).connect();
}

const room = document.getElementById("room");
const list = document.getElementById("incident-list-page");
if (room) startRoom(room);
else if (list) startList(list);
else if (document.getElementById("bell")) startBare();
