// Small DOM helpers: build elements without innerHTML (text from texts is never parsed as markup),
// format times, and say things in the status region (read out by screen readers).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "14:05" today, "Mar 3" before: what a list needs. */
export function shortTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const today = new Date();
  return when.toDateString() === today.toDateString() ? timeFormat.format(when) : dayFormat.format(when);
}

export function fullTime(iso) {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? "" : fullFormat.format(when);
}

export function timeEl(iso, format = fullTime) {
  return h("time", { datetime: iso, title: fullTime(iso) }, format(iso));
}

let toastTimer = null;

/** One message at a time in the status region; errors stay until the next message. */
export function say(message, { bad = false } = {}) {
  const region = document.getElementById("status");
  region.replaceChildren(h("div", { class: bad ? "toast bad" : "toast", text: message }));
  clearTimeout(toastTimer);
  if (!bad) toastTimer = setTimeout(() => region.replaceChildren(), 6000);
}

export function sayError(error) {
  say(error && error.message ? error.message : String(error), { bad: true });
}
