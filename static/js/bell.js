// bell.js: the page header's notification bell (docs/api.md, "Notifications").
//
// The unread count and the newest notifications come from GET /api/notifications
// when the page loads and whenever the socket (re)opens; after that each
// `notification:new` push (relayed by live.js as a `live:notification` event)
// carries the new one and the unread count as of its commit. The count shows on
// the bell and in the tab title, "(2) …". Opening a notification marks it read
// (POST /api/notifications/read) and goes to its incident. A browser
// notification is shown too if the person allowed them; permission is asked
// only from the button in the bell's menu. Text only via textContent.

const SHOWN = 10;

const bell = document.getElementById("bell");

function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const ROLE_WORDS = { assignee: "an assignee", comms_lead: "communications lead" };

export function describe(notification) {
  const who = notification.actor?.username || "someone";
  const where = `#${notification.incident.id} ${notification.incident.title}`;
  if (notification.kind === "mention") return `${who} mentioned you in ${where}`;
  const role = ROLE_WORDS[notification.role] || notification.role || "a role";
  return `${who} made you ${role} of ${where}`;
}

export function titled(base, unread) {
  return unread > 0 ? `(${unread}) ${base}` : base;
}

function startBell(root) {
  const button = document.getElementById("bell-button");
  const menu = document.getElementById("bell-menu");
  const list = document.getElementById("bell-list");
  const badge = document.getElementById("bell-count");
  const readAll = document.getElementById("bell-read-all");
  const permission = document.getElementById("bell-permission");
  const baseTitle = document.title;
  let items = []; // newest first, as the server last said (and pushes since)
  let unread = 0;

  function render() {
    badge.hidden = unread === 0;
    badge.textContent = unread > 99 ? "99+" : String(unread);
    button.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications, none unread");
    document.title = titled(baseTitle, unread);
    readAll.disabled = unread === 0;
    if (!items.length) {
      list.replaceChildren(element("li", "muted", "Nothing yet."));
      return;
    }
    list.replaceChildren(
      ...items.slice(0, SHOWN).map((notification) => {
        const item = element("li", notification.read_at ? "bell-item" : "bell-item is-unread");
        const link = element("a", "bell-link");
        link.href = notification.url;
        link.dataset.notification = notification.id;
        link.append(element("span", "bell-what", describe(notification)));
        if (notification.excerpt) link.append(element("span", "bell-excerpt", notification.excerpt));
        const when = element("time", "bell-when");
        when.dateTime = notification.created_at;
        when.textContent = new Date(notification.created_at).toLocaleString(undefined, {
          hour: "2-digit",
          minute: "2-digit",
          day: "numeric",
          month: "short",
        });
        link.append(when);
        if (!notification.read_at) link.append(element("span", "visually-hidden", " (unread)"));
        item.append(link);
        return item;
      }),
    );
  }

  async function load() {
    try {
      const response = await fetch(`${root.dataset.listUrl}?page_size=${SHOWN}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) return;
      const page = await response.json();
      items = page.results || [];
      unread = page.unread || 0;
      render();
    } catch (error) {
      console.warn("bell: could not load notifications", error);
    }
  }

  async function markRead(body) {
    const response = await fetch(root.dataset.readUrl, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true, // a click that navigates away still marks it read
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    if (!response.ok) return;
    const result = await response.json();
    unread = result.unread;
    const now = new Date().toISOString();
    for (const notification of items) {
      if (body.all || body.ids.includes(notification.id)) notification.read_at ??= now;
    }
    render();
  }

  function setOpen(open) {
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    permission.hidden = !("Notification" in window) || Notification.permission !== "default";
  }

  button.addEventListener("click", () => setOpen(menu.hidden));
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !root.contains(event.target)) setOpen(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !menu.hidden) {
      setOpen(false);
      button.focus();
    }
  });
  readAll.addEventListener("click", () => markRead({ all: true }).catch(() => {}));
  list.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-notification]");
    if (!link) return;
    const id = Number(link.dataset.notification);
    const notification = items.find((n) => n.id === id);
    if (notification && !notification.read_at) markRead({ ids: [id] }).catch(() => {});
  });
  // Asked only from this button (a user gesture), never on its own.
  permission.addEventListener("click", async () => {
    if (!("Notification" in window)) return;
    await Notification.requestPermission();
    permission.hidden = Notification.permission !== "default";
    button.focus(); // the button just went away: keep the focus in the menu's owner
  });

  document.addEventListener("live:open", load);
  document.addEventListener("live:notification", (event) => {
    const { notification, unread: count } = event.detail;
    if (!items.some((n) => n.id === notification.id)) items.unshift(notification);
    unread = count;
    render();
    if ("Notification" in window && Notification.permission === "granted") {
      const shown = new Notification(describe(notification), { body: notification.excerpt, tag: `n${notification.id}` });
      shown.addEventListener("click", () => {
        window.focus();
        markRead({ ids: [notification.id] })
          .catch(() => {})
          .finally(() => location.assign(notification.url));
      });
    }
  });
  load();
}

if (bell) startBell(bell);
