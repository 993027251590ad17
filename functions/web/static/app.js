// Parley's web inbox: sign-in, the conversation list, a thread, the message views, CRM conflicts.
// Everything comes from the /v1 API; new texts arrive by polling (every POLL_MS, only while the tab is
// visible), and each poll updates the page in place: rows and messages are keyed by number and id.
// The address says what is open (#/c/<number>, #/view/<name>), so a thread can be bookmarked, shared,
// reloaded, and Back and Forward move between threads, views and the list.

import { api, fetchBlob, onUnauthorized, query } from "./api.js";
import * as auth from "./auth.js";
import { openCompose, setupCompose } from "./compose.js";
import { $, $$, h, say, sayError, shortTime, timeEl } from "./dom.js";

const POLL_MS = 4000;
const PAGE = 50;
const LIST_ROUTE = "#/";
const VIEW_TITLES = {
  all: "All",
  received: "Received",
  sent: "Sent",
  failed: "Failed",
  pending: "Pending",
  scheduled: "Scheduled",
  "did-not-trigger": "Did not trigger",
  deleted: "Deleted",
};
const TICKS = { accepted: "\u2713", sent: "\u2713", partially_delivered: "\u2713", delivered: "\u2713\u2713", read: "\u2713\u2713" };
// The Failed view's statuses: a long text of which only some parts arrived is shown there too.
const FAILED = new Set(["failed", "undelivered", "partially_delivered"]);

const store = {
  config: null,
  numbers: [],
  templates: null,
  conversations: new Map(), // customer number -> conversation
  listCursor: null,
  openNumber: null,
  openConversation: null, // the open thread's conversation, kept when a filter drops it from the list
  thread: new Map(), // message id -> message
  threadCursor: null,
  names: new Map(), // contact id -> Promise<name | null>
  nav: "conversations",
  route: null, // the address last applied
  opening: null, // the number whose thread an address is opening (polls leave it to that)
  view: { rows: new Map(), cursor: null, selected: new Set() },
  conflictsCursor: null,
  polling: null,
  busy: false,
};

// ---------------------------------------------------------------- sign-in

async function boot() {
  onUnauthorized(() => showSignIn("Your session has ended: sign in again."));
  try {
    store.config = await auth.loadConfig();
  } catch (error) {
    showSignIn(error.message);
    return;
  }
  if (store.config.mode === "oidc") {
    try {
      await auth.oidcFinish();
    } catch (error) {
      showSignIn(error.message);
      return;
    }
  }
  if (auth.currentToken()) startApp();
  else showSignIn("");
}

function showSignIn(message) {
  auth.signOut();
  stopPolling();
  const dialog = $("#compose");
  if (dialog.open) dialog.close();
  $("#app").hidden = true;
  $("#top-actions").hidden = true;
  $("#who").textContent = "";
  $("#signin").hidden = false;
  const dev = !store.config || store.config.mode !== "oidc";
  $(".dev-only").hidden = !dev;
  for (const input of $$(".dev-only input")) input.disabled = !dev;
  $("#signin-note").textContent =
    message || (dev ? "Local stack: sign in as anyone, in any teams." : "Sign in with your organisation's account.");
  if (dev) $("#signin-user").focus();
}

async function onSignIn(event) {
  event.preventDefault();
  try {
    if (store.config?.mode === "oidc") {
      await auth.oidcStart();
      return;
    }
    const user = $("#signin-user").value.trim();
    const teams = $("#signin-teams").value.split(",").map((t) => t.trim()).filter(Boolean);
    if (!user || !teams.length) {
      $("#signin-note").textContent = "Give a user and at least one team.";
      return;
    }
    await auth.devSignIn(user, teams, $("#signin-admin").checked);
    startApp();
  } catch (error) {
    $("#signin-note").textContent = error.message;
  }
}

async function startApp() {
  const claims = auth.claims(auth.currentToken());
  const teams = [].concat(claims.teams || claims.team || []).join(", ");
  const admin = [].concat(claims.roles || []).includes("admin");
  $("#who").textContent = `${claims.sub || "signed in"}${teams ? ` - ${teams}` : ""}${admin ? " - admin" : ""}`;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#top-actions").hidden = false;
  store.conversations.clear();
  closeThread();
  // what the address asks for first (the list, a thread, a view); our numbers (filters, compose) fill
  // in when they come, without moving the page
  store.nav = null;
  store.route = null;
  applyRoute({ force: true }).catch(sayError);
  startPolling();
  try {
    store.numbers = (await api("GET", "/v1/numbers")).numbers;
  } catch (error) {
    store.numbers = [];
    if (error.status !== 401) sayError(error);
  }
  fillNumberFilters();
}

function fillNumberFilters() {
  for (const select of [$("#filter-number"), $("#view-number")]) {
    const keep = select.value;
    select.replaceChildren(
      h("option", { value: "" }, "All numbers"),
      ...store.numbers.map((n) => h("option", { value: n.number }, n.number)),
    );
    select.value = store.numbers.some((n) => n.number === keep) ? keep : "";
  }
}

// ---------------------------------------------------------------- navigation

function threadRoute(number) {
  return `#/c/${encodeURIComponent(number)}`;
}

/** A view's address; the conversations' is the open thread's, if one is open. */
function navRoute(target) {
  if (target !== "conversations") return `#/view/${target}`;
  return store.openNumber ? threadRoute(store.openNumber) : LIST_ROUTE;
}

function currentRoute() {
  return location.hash || LIST_ROUTE;
}

/** What an address asks for: a view (nav) and, in the conversations, the thread to open (number);
 * null for a hash that is no route of ours (the skip link's #main). */
function parseRoute(hash) {
  const thread = /^#\/c\/([^/]+)$/.exec(hash);
  if (thread) {
    let number = thread[1];
    try {
      number = decodeURIComponent(number);
    } catch {
      // not percent-encoded as it should be: asked for as it is, and not found
    }
    return { nav: "conversations", number };
  }
  const view = /^#\/view\/([a-z-]+)$/.exec(hash);
  if (view && (view[1] in VIEW_TITLES || view[1] === "conflicts")) return { nav: view[1], number: null };
  return hash.startsWith("#/") ? { nav: "conversations", number: null } : null;
}

/** A person's move (a row, a view, Back to the list): a new history entry, then the page follows it.
 * reload: load the view again even if it is the one showing (a click on its button). */
function go(hash, { reload = false } = {}) {
  const from = currentRoute();
  if (hash !== from) history.pushState({ from }, "", hash);
  applyRoute({ force: true, reload }).catch(sayError);
}

/** Show what the address says: on sign-in, after go(), and on Back, Forward or an address typed in.
 * Without force, an address already shown is left as it is. */
async function applyRoute({ force = false, reload = false } = {}) {
  if ($("#app").hidden || !auth.currentToken()) return;
  const hash = currentRoute();
  if (!force && hash === store.route) return;
  const route = parseRoute(hash) || (force ? { nav: "conversations", number: null } : null);
  if (!route) return;
  store.route = hash;
  if (reload || route.nav !== store.nav) navigate(route.nav);
  if (route.nav !== "conversations") return;
  if (!route.number) {
    closeThread();
    return;
  }
  store.opening = route.number;
  try {
    await openThread(route.number);
  } catch (error) {
    if (error.status !== 404 || store.openNumber !== route.number) throw error;
    closeThread();
    history.replaceState(null, "", LIST_ROUTE);
    store.route = LIST_ROUTE;
    say(`Conversation not found: ${route.number} is not a conversation you can see.`, { bad: true });
  } finally {
    if (store.opening === route.number) store.opening = null;
  }
}

function navigate(target) {
  store.nav = target;
  for (const button of $$(".views-nav button")) {
    if (button.dataset.nav === target) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  $("#inbox").hidden = target !== "conversations";
  $("#views").hidden = !(target in VIEW_TITLES);
  $("#conflicts").hidden = target !== "conflicts";
  if (target === "conversations") loadConversations({ reset: true }).catch(sayError);
  else if (target === "conflicts") loadConflicts({ reset: true }).catch(sayError);
  else {
    $("#view-title").textContent = VIEW_TITLES[target];
    store.view = { rows: new Map(), cursor: null, selected: new Set() };
    $("#view-rows").replaceChildren();
    loadView({ reset: true }).catch(sayError);
  }
}

// ---------------------------------------------------------------- conversation list

function listParams() {
  const q = $("#search").value.trim();
  return {
    q: q || undefined,
    our_number: $("#filter-number").value,
    status: $("#filter-status").value,
    unread: $("#filter-unread").checked ? "true" : undefined,
    limit: PAGE,
  };
}

/** reset: a new filter (the list starts over); more: the next page; else a poll of the first page. */
async function loadConversations({ reset = false, more = false } = {}) {
  const params = listParams();
  const cursor = more ? store.listCursor : undefined;
  const page = await api("GET", `/v1/conversations${query({ ...params, cursor })}`);
  if (reset) {
    store.conversations.clear();
    $("#conversation-list").replaceChildren();
  }
  if (reset || more || store.listCursor === null) store.listCursor = page.cursor;
  for (const c of page.conversations) upsertConversation(c);
  if (!params.q) sortList();
  $("#list-empty").hidden = store.conversations.size > 0;
  $("#list-more").hidden = !store.listCursor;
  if (store.openNumber) renderThreadHead();
}

/** The customer's consent as the API says it: "opted out" (of all our numbers), "opted out of" the
 * numbers they opted out of one by one, or null. */
function optOutWords(c) {
  if (c.opted_out) return "opted out";
  const numbers = c.opted_out_of || [];
  return numbers.length ? `opted out of ${numbers.join(", ")}` : null;
}

function hasConflict(c) {
  return !c.contact_id && ((c.conflict_candidates || []).length > 0 || (c.hidden_candidates || 0) > 0);
}

function upsertConversation(c) {
  store.conversations.set(c.customer_number, c);
  if (c.customer_number === store.openNumber) store.openConversation = c;
  const list = $("#conversation-list");
  const old = list.querySelector(`[data-number="${CSS.escape(c.customer_number)}"]`);
  const fresh = conversationItem(c);
  if (old) {
    if (old.dataset.sig !== fresh.dataset.sig) old.replaceWith(fresh);
  } else {
    list.append(fresh);
  }
}

function conversationItem(c) {
  const unread = c.unread_count || 0;
  const open = c.customer_number === store.openNumber;
  const label = h("span", { class: "name", dataset: { contact: c.contact_id || "" } }, c.customer_number);
  nameOf(c).then((name) => {
    if (name && name !== c.customer_number) label.textContent = `${name} (${c.customer_number})`;
  });
  const optedOut = optOutWords(c);
  const marks = h(
    "span",
    { class: "marks" },
    optedOut
      ? h("span", { class: "marker opt-out", "data-testid": "opt-out-marker" }, optedOut[0].toUpperCase() + optedOut.slice(1))
      : null,
    hasConflict(c) ? h("span", { class: "marker conflict", "data-testid": "conflict-marker" }, "CRM conflict") : null,
    c.closed ? h("span", { class: "marker closed" }, "Closed") : null,
    h("span", { class: "badge", "data-testid": "unread-badge", hidden: unread === 0, title: `${unread} unread` }, String(unread)),
  );
  const item = h(
    "li",
    {
      class: `conversation${unread ? " unread" : ""}`,
      "data-testid": "conversation",
      "data-number": c.customer_number,
      "data-unread": unread,
      "aria-current": open ? "true" : undefined,
    },
    h(
      "button",
      { type: "button", onclick: () => go(threadRoute(c.customer_number)) },
      label,
      h("span", { class: "when" }, timeEl(c.last_activity_at, shortTime)),
      h("span", { class: "preview" }, `${c.last_direction === "outbound" ? "You: " : ""}${c.last_message_preview || ""}`),
      marks,
    ),
  );
  item.dataset.sig = JSON.stringify([c, open]);
  return item;
}

/** Newest activity first; only moves rows when the order changed (moving a row loses its focus). */
function sortList() {
  const list = $("#conversation-list");
  const items = [...list.children];
  const sorted = [...items].sort((a, b) => {
    const x = store.conversations.get(a.dataset.number)?.last_activity_at || "";
    const y = store.conversations.get(b.dataset.number)?.last_activity_at || "";
    return x < y ? 1 : x > y ? -1 : 0;
  });
  if (sorted.some((item, i) => item !== items[i])) list.append(...sorted);
}

function nameOf(c) {
  if (!c.contact_id) return Promise.resolve(null);
  if (!store.names.has(c.contact_id)) {
    const found = api("GET", `/v1/records/${encodeURIComponent(c.contact_id)}`)
      .then((record) => record.name || null)
      .catch(() => null);
    store.names.set(c.contact_id, found);
  }
  return store.names.get(c.contact_id);
}

async function markAllRead() {
  let cursor = null;
  let marked = 0;
  do {
    const answer = await api("POST", "/v1/conversations/read", { our_number: $("#filter-number").value || null, cursor });
    marked += answer.marked;
    cursor = answer.cursor;
  } while (cursor);
  say(`Marked ${marked} conversation${marked === 1 ? "" : "s"} read.`);
  await loadConversations({ reset: true });
}

// ---------------------------------------------------------------- thread

function showThread(visible) {
  $("#thread").hidden = !visible;
  $("#no-thread").hidden = visible;
  $("#inbox").classList.toggle("reading", visible);
}

/** No thread open: the list alone (on a phone), or the list and "Pick a conversation". */
function closeThread() {
  const was = store.openNumber;
  store.openNumber = null;
  store.openConversation = null;
  store.thread.clear();
  store.threadCursor = null;
  $("#messages").replaceChildren();
  $("#contact-form").hidden = true;
  const reading = $("#thread").contains(document.activeElement);
  for (const item of $$("#conversation-list [data-testid=conversation][aria-current]")) item.removeAttribute("aria-current");
  showThread(false);
  if (was && reading) $(`#conversation-list [data-number="${CSS.escape(was)}"] button`)?.focus();
}

async function openThread(number) {
  if (store.openNumber !== number) {
    store.openNumber = number;
    store.openConversation = store.conversations.get(number) || null;
    store.thread.clear();
    store.threadCursor = null;
    $("#messages").replaceChildren();
    $("#contact-form").hidden = true;
  }
  for (const item of $$("#conversation-list [data-testid=conversation]")) {
    if (item.dataset.number === number) item.setAttribute("aria-current", "true");
    else item.removeAttribute("aria-current");
  }
  showThread(true);
  renderThreadHead();
  await loadThread({ first: true });
  if (!store.conversations.has(number)) await refreshOpenConversation();
  await markRead(number);
}

/** The open conversation when the list doesn't hold it (another filter, an older page, a link): a
 * search for its number, so its header (closed, consent) is the API's. */
async function refreshOpenConversation() {
  const number = store.openNumber;
  if (!number) return;
  const page = await api("GET", `/v1/conversations${query({ q: number, status: "all", limit: 10 })}`);
  const found = page.conversations.find((c) => c.customer_number === number);
  if (!found || store.openNumber !== number || store.conversations.has(number)) return;
  store.openConversation = found;
  renderThreadHead();
}

/** Whether text `a` comes after `b` in a thread: by time (the API writes times at varying
 * precision, so as strings they don't compare), then by id, since carriers stamp to the second. */
function textAfter(a, b) {
  const at = Date.parse(a.created_at), bt = Date.parse(b.created_at);
  return at !== bt ? at > bt : a.message_id > b.message_id;
}

async function markRead(number) {
  if (store.openNumber !== number) return; // another conversation was opened meanwhile
  const c = store.conversations.get(number) || store.openConversation;
  if (!c || !c.unread_count || document.hidden) return;
  // read up to the newest text shown: one arriving since the thread loaded stays unread
  let newest = null;
  for (const m of store.thread.values()) {
    if (m.customer_number === number && (!newest || textAfter(m, newest))) newest = m;
  }
  const body = newest ? { seen_message_id: newest.message_id } : undefined;
  const read = await api("POST", `/v1/conversations/${encodeURIComponent(number)}/read`, body);
  const unread_count = read && typeof read.unread_count === "number" ? read.unread_count : 0;
  if (store.conversations.has(number)) upsertConversation({ ...c, unread_count });
  else store.openConversation = { ...c, unread_count };
}

function renderThreadHead() {
  const number = store.openNumber;
  const c = store.openConversation || { customer_number: number, closed: false };
  $("#thread-title").textContent = number;
  nameOf(c).then((name) => {
    if (name && name !== number && store.openNumber === number) $("#thread-title").textContent = `${name} (${number})`;
  });
  const via = c.last_our_number ? `last texted ${c.last_our_number}` : "";
  const bits = [via, c.closed ? "closed" : "", c.owner ? `owner ${c.owner}` : "", optOutWords(c)];
  $("#thread-sub").textContent = bits.filter(Boolean).join(" - ");
  $("#thread-close").hidden = Boolean(c.closed);
  $("#thread-reopen").hidden = !c.closed;
  $("#thread-add-contact").hidden = Boolean(c.contact_id);
}

/** first: the newest page (also each poll: statuses change in place); older: the page before. */
async function loadThread({ first = false, older = false } = {}) {
  const number = store.openNumber;
  if (!number) return;
  const cursor = older ? store.threadCursor : undefined;
  const page = await api("GET", `/v1/conversations/${encodeURIComponent(number)}/messages${query({ limit: PAGE, cursor })}`);
  if (store.openNumber !== number) return;
  if (older || (first && store.threadCursor === null)) store.threadCursor = page.cursor;
  const list = $("#messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  let added = false;
  let inbound = false;
  for (const m of page.messages) {
    const known = store.thread.get(m.message_id);
    if (known && known.updated_at === m.updated_at && known.status === m.status) continue;
    if (!known) {
      added = true;
      inbound ||= m.direction === "inbound";
    }
    store.thread.set(m.message_id, m);
    const fresh = messageItem(m);
    const old = list.querySelector(`[data-id="${CSS.escape(m.message_id)}"]`);
    if (old) old.replaceWith(fresh);
    else list.append(fresh);
  }
  if (added) {
    const items = [...list.children].sort((a, b) => (a.dataset.created < b.dataset.created ? -1 : 1));
    list.append(...items);
    if (!older && (first || nearBottom)) list.scrollTop = list.scrollHeight;
  }
  $("#thread-older").hidden = !store.threadCursor;
  if (inbound && !first) await markRead(number);
}

function messageItem(m) {
  const outbound = m.direction === "outbound";
  const failed = FAILED.has(m.status);
  const tick = outbound && TICKS[m.status]
    ? h("span", { class: "tick", "data-testid": "tick", "data-status": m.status, title: m.status, "aria-label": statusWords(m.status) }, TICKS[m.status])
    : null;
  const reason = failed || m.status === "suppressed"
    ? h("p", { class: "failure", "data-testid": "failure-reason" }, plainReason(m))
    : null;
  const scheduled = m.status === "scheduled" && m.next_attempt_at
    ? h("p", { class: "scheduled-line" }, "Scheduled for ", timeEl(m.next_attempt_at))
    : null;
  const held = m.status === "held" && m.next_attempt_at
    ? h("p", { class: "scheduled-line" }, "Held for quiet hours until ", timeEl(m.next_attempt_at))
    : null;
  const actions = h(
    "div",
    { class: "actions" },
    outbound && failed ? h("button", { type: "button", onclick: () => resendOne(m) }, "Resend") : null,
    m.status === "scheduled" ? h("button", { type: "button", onclick: () => cancelOne(m) }, "Cancel") : null,
    h("button", { type: "button", onclick: () => openCompose("forward", { message: m }) }, "Forward"),
  );
  const who = outbound ? `Sent from ${m.our_number}${m.requested_by ? ` by ${m.requested_by}` : ""}` : `Received on ${m.our_number}`;
  return h(
    "li",
    {
      class: `message ${m.direction}${failed ? " failed" : ""}`,
      "data-testid": "message",
      "data-id": m.message_id,
      "data-direction": m.direction,
      "data-status": m.status,
      "data-created": m.created_at,
    },
    h("div", { class: "who-line" }, who),
    h("p", { class: "text" }, m.body),
    mediaList(m),
    h("div", { class: "meta" }, timeEl(m.created_at), tick, h("span", { class: "state" }, statusWords(m.status))),
    reason,
    scheduled,
    held,
    actions,
  );
}

function statusWords(status) {
  return (status || "").replace(/_/g, " ");
}

function plainReason(m) {
  if (m.status === "partially_delivered") {
    const why = m.error_reason || (m.error_code ? `code ${m.error_code}` : "");
    return `Only part of this text was delivered${why ? ` (${why})` : ""}. A resend sends the whole text again.`;
  }
  if (m.error_reason) return m.error_reason;
  if (m.error_code) return `The carrier refused it (code ${m.error_code}).`;
  return m.status === "suppressed" ? "Not sent." : "Not delivered.";
}

// Object URLs of the pictures shown, by the element showing each: revoked once it leaves the page
// (a thread closed, a message re-rendered), so the browser can let the bytes go.
const objectUrls = new Map();
new MutationObserver(() => {
  for (const [el, url] of objectUrls) {
    if (el.isConnected) continue;
    URL.revokeObjectURL(url);
    objectUrls.delete(el);
  }
}).observe(document.body, { childList: true, subtree: true });

function mediaPath(m, index) {
  return `/v1/messages/${encodeURIComponent(m.message_id)}/media/${index}`;
}

/** Our stored copies: pictures shown in the bubble, other files a download, both fetched from the API
 * with the token (the page's policy allows images from our origin and from blob: URLs only). What
 * isn't stored (refused, not copied yet) stays a label, with the carrier's link. */
function mediaList(m) {
  const media = m.media || [];
  if (!media.length) return null;
  const from = m.direction === "inbound" ? m.customer_number : m.our_number;
  return h(
    "ul",
    { class: "media", "aria-label": "Attachments" },
    media.map((item, index) => {
      const kind = item.content_type || "file";
      const size = item.size ? `, ${Math.max(1, Math.round(item.size / 1024))} KB` : "";
      const label = `Attachment (${kind}${size})`;
      const row = h("li", { "data-testid": "media" });
      if (!item.stored_at) {
        const safe = /^https?:\/\//i.test(item.url || "");
        row.append(
          safe ? h("a", { href: item.url, target: "_blank", rel: "noopener noreferrer" }, label) : label,
          item.error ? h("span", { class: "sub" }, ` - ${item.error}`) : "",
        );
      } else if (/^image\//i.test(kind) && !/svg/i.test(kind)) {
        row.append(h("span", { class: "sub" }, `Loading picture ${index + 1}...`));
        showPicture(row, mediaPath(m, index), `Picture ${index + 1} from ${from}`, label);
      } else {
        const link = h("a", { href: "#", onclick: (event) => download(event, mediaPath(m, index), index) }, label);
        row.append(link);
      }
      return row;
    }),
  );
}

async function showPicture(row, path, alt, label) {
  let blob;
  try {
    blob = await fetchBlob(path);
  } catch (error) {
    row.replaceChildren(label, h("span", { class: "sub" }, ` - ${error.message || error}`));
    return;
  }
  if (!row.isConnected) return; // the message left the page while its picture loaded
  const url = URL.createObjectURL(blob);
  const img = h("img", { class: "picture", src: url, alt });
  objectUrls.set(img, url);
  img.addEventListener("load", () => row.setAttribute("data-loaded", "true"), { once: true });
  img.addEventListener("error", () => row.replaceChildren(label, h("span", { class: "sub" }, " - can't be shown")), { once: true });
  row.replaceChildren(img);
}

async function download(event, path, index) {
  event.preventDefault();
  try {
    const url = URL.createObjectURL(await fetchBlob(path));
    const save = h("a", { href: url, download: `attachment-${index + 1}`, hidden: true });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000); // the download may still be reading it
  } catch (error) {
    sayError(error);
  }
}

async function resendOne(m) {
  try {
    const answer = await api("POST", `/v1/messages/${encodeURIComponent(m.message_id)}/resend`);
    const outcome = answer.results ? answer.results[0] : answer;
    const again = m.status === "partially_delivered" ? " The parts already delivered are sent again." : "";
    say(outcome && outcome.result === "refused" ? `Not resent: ${outcome.reason}` : `Resending.${again}`);
    await refreshCurrent();
  } catch (error) {
    sayError(error);
  }
}

async function cancelOne(m) {
  try {
    await api("POST", `/v1/messages/${encodeURIComponent(m.message_id)}/cancel`);
    say("Scheduled text canceled.");
    await refreshCurrent();
  } catch (error) {
    sayError(error);
  }
}

async function conversationAction(action) {
  const number = store.openNumber;
  try {
    const answer = await api("POST", `/v1/conversations/${encodeURIComponent(number)}/${action}`);
    if (answer && answer.customer_number) store.openConversation = answer;
    say(action === "close" ? "Conversation closed." : "Conversation reopened.");
    await loadConversations({ reset: true });
    renderThreadHead();
  } catch (error) {
    sayError(error);
  }
}

async function addContact(event) {
  event.preventDefault();
  const number = store.openNumber;
  const name = $("#contact-name").value.trim();
  if (!name) {
    say("Give the contact a name.", { bad: true });
    return;
  }
  try {
    const answer = await api("POST", `/v1/conversations/${encodeURIComponent(number)}/contact`, {
      name,
      record_type: $("#contact-type").value,
    });
    store.names.set(answer.record.contact_id, Promise.resolve(answer.record.name));
    upsertConversation(answer.conversation);
    $("#contact-form").hidden = true;
    $("#contact-form").reset();
    renderThreadHead();
    say(`Added ${answer.record.name}.`);
  } catch (error) {
    sayError(error);
  }
}

// ---------------------------------------------------------------- message views

async function loadView({ reset = false, more = false } = {}) {
  const view = store.nav;
  if (!(view in VIEW_TITLES)) return;
  const cursor = more ? store.view.cursor : undefined;
  const page = await api("GET", `/v1/messages${query({ view, our_number: $("#view-number").value, limit: PAGE, cursor })}`);
  if (store.nav !== view) return;
  const list = $("#view-rows");
  if (reset) {
    store.view.rows.clear();
    list.replaceChildren();
  }
  if (reset || more) store.view.cursor = page.cursor;
  const firstPageIds = new Set(page.messages.map((m) => m.message_id));
  if (!reset && !more) {
    // a poll: what left the view (resent, restored, delivered) goes from the first page's span
    const oldest = page.messages.length ? page.messages[page.messages.length - 1].created_at : "";
    for (const [id, m] of store.view.rows) {
      if (!firstPageIds.has(id) && m.created_at >= oldest) removeRow(id);
    }
  }
  for (const m of page.messages) {
    const old = list.querySelector(`[data-id="${CSS.escape(m.message_id)}"]`);
    const known = store.view.rows.get(m.message_id);
    store.view.rows.set(m.message_id, m);
    if (old && known && known.updated_at === m.updated_at && known.status === m.status) continue;
    const fresh = rowItem(m);
    if (old) old.replaceWith(fresh);
    else list.append(fresh);
  }
  const items = [...list.children].sort((a, b) => (a.dataset.created < b.dataset.created ? 1 : -1));
  if (items.some((item, i) => item !== list.children[i])) list.append(...items);
  $("#view-empty").hidden = store.view.rows.size > 0;
  $("#view-more").hidden = !store.view.cursor;
  updateSelection();
}

function removeRow(id) {
  store.view.rows.delete(id);
  store.view.selected.delete(id);
  $(`#view-rows [data-id="${CSS.escape(id)}"]`)?.remove();
}

function rowItem(m) {
  const checked = store.view.selected.has(m.message_id);
  const box = h("input", { type: "checkbox", "aria-label": "Select", checked });
  box.addEventListener("change", () => {
    if (box.checked) store.view.selected.add(m.message_id);
    else store.view.selected.delete(m.message_id);
    updateSelection();
  });
  const arrow = m.direction === "inbound" ? "from" : "to";
  const open = h(
    "button",
    { type: "button", class: "link", onclick: () => openFromView(m.customer_number), title: "Open the conversation" },
    `${arrow} ${m.customer_number}`,
  );
  const reason = FAILED.has(m.status) || m.status === "suppressed"
    ? h("span", { class: "reason", "data-testid": "failure-reason" }, plainReason(m))
    : null;
  return h(
    "li",
    {
      class: "row",
      "data-testid": "message-row",
      "data-id": m.message_id,
      "data-status": m.status,
      "data-direction": m.direction,
      "data-created": m.created_at,
    },
    box,
    h("span", {}, timeEl(m.created_at, shortTime), " ", open),
    h("span", { class: "text" }, m.body),
    h("span", { class: "state" }, statusWords(m.status)),
    reason,
  );
}

function openFromView(number) {
  go(threadRoute(number));
}

function updateSelection() {
  const count = store.view.selected.size;
  $("#selected-count").textContent = `${count} selected`;
  for (const button of $$("[data-bulk]")) button.disabled = count === 0;
  const all = $("#select-all");
  all.checked = count > 0 && count === store.view.rows.size;
  all.indeterminate = count > 0 && count < store.view.rows.size;
}

function selectAll(on) {
  store.view.selected = new Set(on ? store.view.rows.keys() : []);
  for (const box of $$("#view-rows input[type=checkbox]")) box.checked = on;
  updateSelection();
}

async function bulk(action) {
  const ids = [...store.view.selected].slice(0, 500);
  if (!ids.length) return;
  try {
    if (action === "reply") {
      const customers = new Set(ids.map((id) => store.view.rows.get(id)?.customer_number)).size;
      await openCompose("bulk", { ids, customers });
      return;
    }
    const answer = await api("POST", `/v1/messages/${action}`, { ids });
    const results = answer.results || [];
    const good = results.filter((r) => r.result === "ok" || r.result === "resent").length;
    const bad = results.filter((r) => !(r.result === "ok" || r.result === "resent"));
    const verb = { delete: "Deleted", restore: "Restored", resend: "Resending" }[action];
    let message = `${verb} ${good} of ${results.length}.`;
    if (bad.length) message += ` ${bad.map((r) => `${r.message_id}: ${r.reason || r.result}`).join("; ")}`;
    say(message, { bad: good === 0 });
    store.view.selected.clear();
    await loadView({ reset: true });
  } catch (error) {
    sayError(error);
  }
}

// ---------------------------------------------------------------- CRM conflicts

async function loadConflicts({ reset = false, more = false } = {}) {
  const cursor = more ? store.conflictsCursor : undefined;
  const page = await api("GET", `/v1/crm/conflicts${query({ limit: PAGE, cursor })}`);
  const list = $("#conflict-list");
  if (reset) list.replaceChildren();
  store.conflictsCursor = page.cursor;
  for (const conflict of page.conflicts) {
    if (!list.querySelector(`[data-id="${CSS.escape(conflict.conflict_id)}"]`)) list.append(conflictItem(conflict));
  }
  $("#conflicts-empty").hidden = list.children.length > 0;
  $("#conflicts-more").hidden = !store.conflictsCursor;
}

function conflictItem(conflict) {
  const group = `pick-${conflict.conflict_id}`;
  const choices = conflict.candidates.map((c, i) => {
    const id = `${group}-${i}`;
    const detail = [c.record_type, c.owner ? `owner ${c.owner}` : ""].filter(Boolean).join(", ");
    return h(
      "div",
      {},
      h("input", { type: "radio", id, name: group, value: c.record_id }),
      " ",
      h("label", { for: id }, `${c.name} (${detail})`),
    );
  });
  const item = h(
    "li",
    { class: "conflict", "data-testid": "conflict", "data-id": conflict.conflict_id, "data-number": conflict.customer_number },
    h("h3", {}, `${conflict.customer_number} - ${conflict.day}`),
    h("p", { class: "sub" }, "Held ", timeEl(conflict.found_at), ` for team ${conflict.team}.`),
    h("fieldset", {}, h("legend", {}, "Which record is this customer?"), choices),
  );
  const hidden = conflict.hidden_candidates || 0;
  if (hidden) {
    const others = hidden === 1 ? "1 record of another team also has" : `${hidden} records of other teams also have`;
    const who = choices.length ? "" : " Someone in that team, or an admin, resolves this one.";
    item.append(h("p", { class: "sub", "data-testid": "hidden-candidates" }, `${others} this number.${who}`));
  }
  if (!choices.length) return item;
  const resolve = async () => {
    const picked = item.querySelector(`input[name="${CSS.escape(group)}"]:checked`);
    if (!picked) {
      say("Pick a record first.", { bad: true });
      return;
    }
    try {
      const answer = await api("POST", `/v1/crm/conflicts/${encodeURIComponent(conflict.conflict_id)}/resolve`, {
        record_id: picked.value,
      });
      item.remove();
      $("#conflicts-empty").hidden = $("#conflict-list").children.length > 0;
      say(answer.logged ? "Resolved: the day is logged to that record." : `Resolved; the CRM refused the day for now (${answer.error || "it is retried"}).`);
    } catch (error) {
      sayError(error);
    }
  };
  item.append(h("button", { type: "button", class: "primary", onclick: resolve }, "Resolve"));
  return item;
}

// ---------------------------------------------------------------- polling

async function refreshCurrent() {
  if (store.nav === "conversations") {
    await loadConversations();
    const number = store.openNumber;
    if (!number || number === store.opening) return;
    await loadThread();
    if (!store.conversations.has(number)) await refreshOpenConversation();
  } else if (store.nav in VIEW_TITLES) {
    await loadView();
  }
}

function startPolling() {
  stopPolling();
  store.polling = setInterval(async () => {
    if (document.hidden || store.busy || !auth.currentToken()) return;
    store.busy = true;
    try {
      await refreshCurrent();
    } catch (error) {
      if (error.status !== 401) sayError(error);
    } finally {
      store.busy = false;
    }
  }, POLL_MS);
}

function stopPolling() {
  if (store.polling) clearInterval(store.polling);
  store.polling = null;
}

// ---------------------------------------------------------------- wiring

async function templates() {
  if (store.templates === null) {
    try {
      store.templates = (await api("GET", "/v1/templates")).templates;
    } catch (error) {
      sayError(error);
      return [];
    }
  }
  return store.templates;
}

function wire() {
  $("#signin-form").addEventListener("submit", onSignIn);
  $("#sign-out").addEventListener("click", () => showSignIn("Signed out."));
  $("#new-message").addEventListener("click", () => openCompose("new").catch(sayError));
  for (const button of $$(".views-nav button")) {
    button.addEventListener("click", () => go(navRoute(button.dataset.nav), { reload: true }));
  }
  // Back, Forward, an address typed in: Chrome may fire both for one move; applyRoute shows it once
  window.addEventListener("popstate", () => applyRoute().catch(sayError));
  window.addEventListener("hashchange", () => applyRoute().catch(sayError));

  let searchTimer = null;
  $("#search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadConversations({ reset: true }).catch(sayError), 300);
  });
  for (const id of ["#filter-number", "#filter-status", "#filter-unread"]) {
    $(id).addEventListener("change", () => loadConversations({ reset: true }).catch(sayError));
  }
  $("#mark-all-read").addEventListener("click", () => markAllRead().catch(sayError));
  $("#list-more").addEventListener("click", () => loadConversations({ more: true }).catch(sayError));

  $("#thread-back").addEventListener("click", () => {
    // back to the list this thread was opened from, else on to the list
    if (history.state?.from === LIST_ROUTE) history.back();
    else go(LIST_ROUTE);
  });
  $("#thread-reply").addEventListener("click", () => {
    const c = store.openConversation;
    openCompose("reply", { to: store.openNumber, from: c?.last_our_number || "" }).catch(sayError);
  });
  $("#thread-close").addEventListener("click", () => conversationAction("close"));
  $("#thread-reopen").addEventListener("click", () => conversationAction("reopen"));
  $("#thread-add-contact").addEventListener("click", () => {
    $("#contact-form").hidden = false;
    $("#contact-name").focus();
  });
  $("#contact-form").addEventListener("submit", addContact);
  $("#contact-discard").addEventListener("click", () => {
    $("#contact-form").hidden = true;
  });
  $("#thread-older").addEventListener("click", () => loadThread({ older: true }).catch(sayError));

  $("#view-number").addEventListener("change", () => loadView({ reset: true }).catch(sayError));
  $("#view-more").addEventListener("click", () => loadView({ more: true }).catch(sayError));
  $("#select-all").addEventListener("change", (event) => selectAll(event.target.checked));
  for (const button of $$("[data-bulk]")) button.addEventListener("click", () => bulk(button.dataset.bulk));
  $("#conflicts-more").addEventListener("click", () => loadConflicts({ more: true }).catch(sayError));

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && auth.currentToken() && !$("#app").hidden) refreshCurrent().catch(() => {});
  });

  setupCompose({
    numbers: () => store.numbers,
    templates,
    templatesCached: () => store.templates || [],
    conversation: (number) =>
      store.conversations.get(number) || (store.openConversation?.customer_number === number ? store.openConversation : undefined),
    contactName: nameOf,
    afterSend: () => {
      refreshCurrent().catch(sayError);
    },
  });
}

wire();
boot().catch(sayError);
