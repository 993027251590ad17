// The /v1 API, same origin, bearer token on every call. A 401 means the token is gone or expired:
// the app hears of it through onUnauthorized and shows the sign-in again.

import { currentToken } from "./auth.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let unauthorized = () => {};

export function onUnauthorized(callback) {
  unauthorized = callback;
}

/** The API's refusal in plain words: its `error`, then each field's reason. */
function explain(status, body) {
  if (body && typeof body === "object") {
    const fields = (body.errors || []).map((e) => `${e.field}: ${e.reason}`);
    const head = body.error || body.message || `request failed (${status})`;
    return fields.length ? `${head} (${fields.join("; ")})` : head;
  }
  return `request failed (${status})`;
}

export async function api(method, path, body, { idempotencyKey } = {}) {
  const token = currentToken();
  if (!token) {
    unauthorized();
    throw new ApiError(401, "signed out");
  }
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "the server can't be reached; check the connection");
  }
  const data = await response.json().catch(() => null);
  if (response.status === 401) {
    unauthorized();
    throw new ApiError(401, "your session has ended: sign in again", data);
  }
  if (!response.ok) throw new ApiError(response.status, explain(response.status, data), data);
  return data;
}

/** A file the API answers with (an attachment's bytes) as a Blob: fetched with the token, which an
 * <img> or a plain link can't send. Refusals are ApiErrors, as for api(). */
export async function fetchBlob(path) {
  const token = currentToken();
  if (!token) {
    unauthorized();
    throw new ApiError(401, "signed out");
  }
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  } catch {
    throw new ApiError(0, "the server can't be reached; check the connection");
  }
  if (response.status === 401) {
    unauthorized();
    throw new ApiError(401, "your session has ended: sign in again");
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new ApiError(response.status, explain(response.status, data), data);
  }
  return response.blob();
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A fresh key per user action, so a retried click never sends twice. */
export function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
