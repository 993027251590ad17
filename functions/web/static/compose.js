// Compose: a new conversation, a reply, a bulk reply to selected messages, or a forward. One dialog,
// four modes; each sends through its own API route. The live counter is sms.js's countSms, which
// computes exactly what POST /v1/messages/preview computes. A recipient who opted out of the number a
// text would go from is named before sending (the server still decides: it suppresses the text).

import { api, ApiError, newKey, query } from "./api.js";
import { $, h, say } from "./dom.js";
import { countSms } from "./sms.js";

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^}]*))?\}\}/g;

const MODES = {
  new: { title: "New message", to: true, from: true, template: true, sendAt: true },
  reply: { title: "Reply", to: true, from: true, template: true, sendAt: true },
  bulk: { title: "Reply to selected", to: false, from: false, template: true, sendAt: false },
  forward: { title: "Forward", to: true, from: false, template: false, sendAt: false },
};

let ctx = null; // what the app lends compose: numbers, templates, conversations, contact names
let state = null; // the open compose: mode, ids, message, key, touched smart box, looked-up numbers

const el = {};

export function setupCompose(appContext) {
  ctx = appContext;
  for (const id of [
    "compose", "compose-form", "compose-title", "compose-context", "compose-to", "to-field",
    "to-suggestions", "separate-note", "compose-from", "from-field", "compose-template",
    "template-field", "compose-body", "counter", "smart-note", "merge-fields", "merge-inputs",
    "compose-smart", "smart-field", "merge-note", "compose-send-at", "send-at-field", "compose-error",
    "compose-send", "compose-discard", "opt-out-warning",
  ]) {
    el[id] = document.getElementById(id);
  }
  el["compose-form"].addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  el["compose-discard"].addEventListener("click", () => el.compose.close());
  el["compose-body"].addEventListener("input", () => {
    syncMergeFields();
    updateCounter();
  });
  el["compose-template"].addEventListener("change", applyTemplate);
  el["compose-from"].addEventListener("change", () => {
    if (!state.smartTouched) el["compose-smart"].checked = smartDefault();
    updateCounter();
    updateConsent();
  });
  el["compose-smart"].addEventListener("change", () => {
    state.smartTouched = true;
    updateCounter();
  });
  el["compose-to"].addEventListener("input", () => {
    updateRecipients();
    updateCounter();
    suggestSoon();
  });
  el["merge-inputs"].addEventListener("input", updateCounter);
}

/** Open compose. mode: "new" | "reply" ({to, from}) | "bulk" ({ids, customers}) | "forward" ({message}). */
export async function openCompose(mode, options = {}) {
  const spec = MODES[mode];
  state = { mode, options, key: newKey(), smartTouched: false, contacts: new Map(), conversations: new Map() };
  el["compose-title"].textContent = spec.title;
  el["to-field"].hidden = !spec.to;
  el["from-field"].hidden = !spec.from;
  el["template-field"].hidden = !spec.template;
  el["send-at-field"].hidden = !spec.sendAt;
  el["smart-field"].hidden = !spec.from;
  el["compose-error"].hidden = true;
  el["compose-to"].value = options.to || "";
  el["compose-body"].value = mode === "forward" ? options.message.body : "";
  el["compose-send-at"].value = "";
  el["to-suggestions"].hidden = true;
  el["compose-context"].textContent = contextLine(mode, options);
  fillFrom(options.from || "");
  await fillTemplates();
  el["compose-smart"].checked = smartDefault();
  syncMergeFields();
  updateRecipients();
  updateCounter();
  if (!el.compose.open) el.compose.showModal();
  (spec.to && !options.to ? el["compose-to"] : el["compose-body"]).focus();
}

function contextLine(mode, options) {
  if (mode === "bulk") return "Each selected message's customer gets this reply, from the number of ours it used (or, if that is another team's, one of your team's).";
  if (mode === "forward") return `Forwarding a text from ${options.message.customer_number}; edit it if you like.`;
  if (mode === "reply") return "Replies go from the number this customer last talked to unless you pick another.";
  return "";
}

function fillFrom(selected) {
  const numbers = ctx.numbers();
  const options = [h("option", { value: "" }, "Automatic (the number last used)")];
  for (const n of numbers) {
    const label = `${n.number}${n.owner ? ` (${n.owner})` : ""}${n.is_default ? " - default" : ""}`;
    options.push(h("option", { value: n.number }, label));
  }
  el["compose-from"].replaceChildren(...options);
  el["compose-from"].value = numbers.some((n) => n.number === selected) ? selected : "";
}

async function fillTemplates() {
  const templates = await ctx.templates();
  el["compose-template"].replaceChildren(
    h("option", { value: "" }, "No template"),
    ...templates.map((t) => h("option", { value: t.template_id }, t.name)),
  );
}

function applyTemplate() {
  const chosen = ctx.templatesCached().find((t) => t.template_id === el["compose-template"].value);
  if (chosen) el["compose-body"].value = chosen.body;
  syncMergeFields();
  updateCounter();
}

/** The template in use: the one picked, while the message is still its text. */
function templateInUse() {
  const chosen = ctx.templatesCached().find((t) => t.template_id === el["compose-template"].value);
  return chosen && chosen.body === el["compose-body"].value ? chosen : null;
}

function placeholders(text) {
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]))];
}

/** One labelled input per merge field in the message, keeping what was typed. */
function syncMergeFields() {
  const names = placeholders(el["compose-body"].value);
  const old = Object.fromEntries([...el["merge-inputs"].querySelectorAll("input")].map((i) => [i.name, i.value]));
  el["merge-fields"].hidden = names.length === 0;
  const rows = names.flatMap((name) => {
    const id = `merge-${name}`;
    return [h("label", { for: id }, name), h("input", { id, name, value: old[name] || "", autocomplete: "off" })];
  });
  el["merge-inputs"].replaceChildren(...rows);
}

function mergeValues() {
  const values = {};
  for (const input of el["merge-inputs"].querySelectorAll("input")) {
    if (input.value.trim()) values[input.name] = input.value;
  }
  return values;
}

/** The one recipient's record fields, as the send fills merge fields from them (null: none, or
 * several records have the number, or several recipients); fetched once per number. */
function contactValues() {
  const to = state.mode === "bulk" ? [] : recipients();
  if (to.length !== 1 || !/\d{3}/.test(to[0])) return null;
  const number = to[0];
  if (!state.contacts.has(number)) {
    state.contacts.set(number, null);
    api("GET", `/v1/records${query({ phone: number })}`)
      .then((answer) => {
        const records = answer.records || [];
        if (records.length !== 1) return;
        const r = records[0];
        const values = { ...(r.fields || {}), name: r.name, first_name: r.first_name, last_name: r.last_name, email: r.email };
        state.contacts.set(number, values);
        if (state && recipients()[0] === number) updateCounter();
      })
      .catch(() => {});
  }
  return state.contacts.get(number);
}

/** The text as it will go: each field from what was typed, else the contact's value, else its
 * default, as the server renders a template (a blank value counts as none). */
function renderedText() {
  const values = { ...(contactValues() || {}), ...mergeValues() };
  return el["compose-body"].value.replace(PLACEHOLDER, (_m, name, fallback) => {
    const value = values[name];
    if (value !== undefined && value !== null && String(value).trim()) return String(value);
    return (fallback ?? "").trim();
  });
}

function fromNumber() {
  const chosen = el["compose-from"].value;
  const numbers = ctx.numbers();
  if (chosen) return numbers.find((n) => n.number === chosen);
  const to = recipients();
  if (to.length === 1) {
    const sticky = ctx.conversation(to[0])?.last_our_number;
    const found = numbers.find((n) => n.number === sticky);
    if (found) return found;
  }
  return numbers.find((n) => n.is_default) || null;
}

function smartDefault() {
  return Boolean(fromNumber()?.smart_encoding);
}

function updateCounter() {
  const smart = !el["smart-field"].hidden && el["compose-smart"].checked;
  const count = countSms(renderedText(), { smart });
  const counter = el.counter;
  counter.dataset.chars = count.chars;
  counter.dataset.encoding = count.encoding;
  counter.dataset.segments = count.segments;
  counter.dataset.units = count.units;
  counter.dataset.smartApplied = count.smart_applied;
  const parts = count.segments === 1 ? "1 part" : `${count.segments} parts`;
  counter.textContent = `${count.chars} characters - ${count.encoding} - ${parts} (${count.units} units)`;
  // a template is filled per recipient by the server; edited text is filled here, for one recipient
  const perRecipient = Boolean(templateInUse()) || recipients().length <= 1;
  el["merge-note"].textContent = perRecipient
    ? "Left blank: filled from each recipient's contact, else the field's default."
    : "Left blank: the field's default (edited text is the same for every recipient).";
  const note = el["smart-note"];
  if (count.smart_applied) {
    note.textContent = "Smart encoding applies: look-alike characters (curly quotes, dashes) go as plain ones, so the text stays GSM-7.";
    note.hidden = false;
  } else if (count.encoding === "UCS-2" && count.non_gsm.length) {
    note.textContent = `UCS-2 because of: ${count.non_gsm.join(" ")}`;
    note.hidden = false;
  } else {
    note.hidden = true;
  }
}

function recipients() {
  return el["compose-to"].value
    .split(/[,;\n]+/)
    .map((t) => t.trim())
    .filter(Boolean);
}

function updateRecipients() {
  const note = el["separate-note"];
  const count = state.mode === "bulk" ? state.options.customers : recipients().length;
  if (count > 1) {
    note.textContent = `${count} recipients: each gets their own text, in a separate conversation (not a group message).`;
    note.hidden = false;
  } else {
    note.hidden = true;
  }
  if (!state.smartTouched && !el["smart-field"].hidden) el["compose-smart"].checked = smartDefault();
  updateConsent();
}

/** A recipient's conversation: the app's (kept fresh by its polling), else one search for a whole
 * number, once per compose (null: none, or not known yet). */
function conversationOf(number) {
  const known = ctx.conversation(number);
  if (known) return known;
  if (!/^\+[1-9]\d{7,14}$/.test(number)) return null;
  if (!state.conversations.has(number)) {
    const mine = state;
    mine.conversations.set(number, null);
    api("GET", `/v1/conversations${query({ q: number, limit: 10 })}`)
      .then((page) => {
        const found = page.conversations.find((c) => c.customer_number === number) || null;
        mine.conversations.set(number, found);
        if (found && state === mine) updateConsent();
      })
      .catch(() => {});
  }
  return state.conversations.get(number);
}

/** Each recipient who opted out of the number this text would go from (the one picked, else the one
 * they last talked to, else our default), or of all our numbers without opting back in to that one
 * since: the server suppresses those texts. */
function updateConsent() {
  const note = el["opt-out-warning"];
  const lines = [];
  if (state.mode !== "bulk") {
    const chosen = el["compose-from"].value;
    const fallback = ctx.numbers().find((n) => n.is_default)?.number;
    for (const number of new Set(recipients())) {
      const c = conversationOf(number);
      if (!c) continue;
      const from = chosen || c.last_our_number || fallback;
      // A START to a number since the opt-out from all lets that number text them again.
      if (c.opted_out && !(from && (c.opted_in_to || []).includes(from))) {
        lines.push(`${number} has opted out of all our texts: this text to them will be suppressed, not sent.`);
      } else if (from && (c.opted_out_of || []).includes(from)) {
        lines.push(`${number} has opted out of texts from ${from}: this text to them will be suppressed, not sent.`);
      }
    }
  }
  note.textContent = lines.join(" ");
  note.hidden = lines.length === 0;
}

let suggestTimer = null;

function suggestSoon() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(() => suggest().catch(() => {}), 250);
}

/** Contacts for the name or digits being typed: a conversation search (names of linked records). */
async function suggest() {
  const list = el["to-suggestions"];
  const tokens = el["compose-to"].value.split(/[,;\n]/);
  const last = tokens[tokens.length - 1].trim();
  const digits = last.replace(/\D/g, "");
  if (!last || (/\d/.test(last) && digits.length < 3) || (!/\d/.test(last) && last.length < 2)) {
    list.hidden = true;
    return;
  }
  const page = await api("GET", `/v1/conversations${query({ q: last, limit: 8 })}`);
  const items = [];
  for (const c of page.conversations) {
    const name = await ctx.contactName(c);
    const label = name && name !== c.customer_number ? `${name} ${c.customer_number}` : c.customer_number;
    const pick = () => {
      tokens[tokens.length - 1] = ` ${c.customer_number}`;
      el["compose-to"].value = `${tokens.join(",").trim()}, `;
      list.hidden = true;
      el["compose-to"].focus();
      updateRecipients();
      updateCounter();
    };
    items.push(h("li", {}, h("button", { type: "button", onclick: pick }, label)));
  }
  list.replaceChildren(...items);
  list.hidden = items.length === 0;
}

function fail(message) {
  el["compose-error"].textContent = message;
  el["compose-error"].hidden = false;
}

async function send() {
  el["compose-error"].hidden = true;
  const mode = state.mode;
  const to = recipients();
  if (MODES[mode].to) {
    if (!to.length) return fail("Add at least one recipient.");
    const names = to.filter((t) => !/\d/.test(t));
    if (names.length) return fail(`Pick a contact's number for: ${names.join(", ")}`);
  }
  const body = el["compose-body"].value;
  if (!body.trim()) return fail("Write a message.");
  const template = templateInUse();
  const text = template ? { template_id: template.template_id, merge_values: mergeValues() } : { body: renderedText() };
  let sendAt;
  if (MODES[mode].sendAt && el["compose-send-at"].value) {
    const when = new Date(el["compose-send-at"].value);
    if (Number.isNaN(when.getTime())) return fail("Send at: not a date and time.");
    if (when.getTime() < Date.now() - 5 * 60 * 1000) return fail("Send at: that time has passed. Clear it to send now.");
    sendAt = when.toISOString();
  }
  el["compose-send"].disabled = true;
  try {
    const done = await deliver(mode, to, text, sendAt);
    el.compose.close();
    say(done.message);
    ctx.afterSend(done.numbers);
  } catch (error) {
    if (error instanceof ApiError && error.status >= 400 && error.status < 500) state.key = newKey();
    fail(error.message);
  } finally {
    el["compose-send"].disabled = false;
  }
}

async function deliver(mode, to, text, sendAt) {
  const key = state.key;
  if (mode === "bulk") {
    // at most 100 ids a call, and a call near its time limit leaves the rest `not_tried`: ask again
    // for them under the same key (a customer's reply is keyed by customer, so it goes once)
    const results = [];
    let pending = [...state.options.ids];
    while (pending.length) {
      const ids = pending.slice(0, 100);
      const answer = await api("POST", "/v1/messages/reply", { ids, ...text, idempotency_key: key });
      const left = answer.results.filter((r) => r.result === "not_tried").map((r) => r.message_id);
      if (left.length === ids.length) throw new Error("Replying took too long; try again.");
      results.push(...answer.results.filter((r) => r.result !== "not_tried"));
      pending = [...left, ...pending.slice(ids.length)];
    }
    const sent = new Set(results.filter((r) => r.result === "ok").map((r) => r.reply_id)).size;
    const refused = results.filter((r) => r.result === "rejected").map((r) => r.reason);
    const skipped = results.filter((r) => r.result === "skipped").length;
    let message = `Replied to ${sent} customer${sent === 1 ? "" : "s"}.`;
    if (skipped) message += ` ${skipped} selected message${skipped === 1 ? " was" : "s were"} from a customer already answered.`;
    if (refused.length) message += ` Not sent: ${refused.join("; ")}`;
    return { message, numbers: [] };
  }
  if (mode === "forward") {
    const body = { to, idempotency_key: key };
    if (text.body !== state.options.message.body) body.body = text.body;
    const answer = await api("POST", `/v1/messages/${encodeURIComponent(state.options.message.message_id)}/forward`, body);
    return { message: outcome(answer.messages), numbers: answer.messages.map((m) => m.customer_number) };
  }
  const request = { to, ...text };
  const from = el["compose-from"].value;
  if (from) request.from = from;
  if (sendAt) request.send_at = sendAt;
  if (state.smartTouched) request.smart_encoding = el["compose-smart"].checked;
  const answer = await api("POST", "/v1/messages", request, { idempotencyKey: key });
  return { message: outcome(answer.messages), numbers: answer.messages.map((m) => m.customer_number) };
}

/** What became of each text, in a sentence: queued, scheduled, held, or not sent and why. */
function outcome(messages) {
  const stopped = messages.filter((m) => m.status === "suppressed");
  const scheduled = messages.filter((m) => m.status === "scheduled").length;
  const held = messages.filter((m) => m.status === "held").length;
  const going = messages.length - stopped.length - scheduled - held;
  const parts = [];
  if (going) parts.push(`Sending ${going} text${going === 1 ? "" : "s"}.`);
  if (scheduled) parts.push(`${scheduled} scheduled.`);
  if (held) parts.push(`${held} held for quiet hours.`);
  for (const m of stopped) parts.push(`Not sent to ${m.customer_number}: ${m.error_reason || "suppressed"}.`);
  return parts.join(" ");
}

export function composeIsOpen() {
  return Boolean($("#compose")?.open);
}
