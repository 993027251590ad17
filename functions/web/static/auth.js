// Sign-in. GET /ui/config.json says how: "dev" (the local stack: a form posts user, teams and admin to
// /_local/token, which signs a dev JWT) or "oidc" (authorization code with PKCE against the identity
// provider whose tokens the API's JWT authorizer accepts). The token lives in sessionStorage only: it
// is gone when the tab closes, and no other tab or site can read it.

const TOKEN_KEY = "parley.token";
const PKCE_KEY = "parley.pkce";

let config = null;

export async function loadConfig() {
  const response = await fetch("/ui/config.json", { headers: { Accept: "application/json" } });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `sign-in settings unavailable (${response.status})`);
  config = data;
  return data;
}

/** The JWT's claims (not verified here: the API verifies; the page only shows who is signed in). */
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (ch) => ch.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

/** The stored token if it has more than a minute left. */
export function currentToken() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const exp = Number(claims(token).exp || 0);
  if (exp && exp * 1000 < Date.now() + 60_000) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return token;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Local: a dev token from the stack's /_local/token. */
export async function devSignIn(user, teams, admin) {
  const response = await fetch(config.token_url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user, teams, admin }),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok || !data.token) throw new Error(data.message || `sign-in failed (${response.status})`);
  sessionStorage.setItem(TOKEN_KEY, data.token);
  return data.token;
}

function randomUrlSafe(bytes) {
  const data = crypto.getRandomValues(new Uint8Array(bytes));
  return base64Url(data);
}

function base64Url(data) {
  let text = "";
  for (const byte of new Uint8Array(data)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function redirectUri() {
  return `${location.origin}/`;
}

/** OIDC: off to the identity provider; it comes back to "/" with ?code=&state=. The address's hash
 * (the thread or view a link opened) can't go along in the redirect URI, so it waits in
 * sessionStorage with the PKCE verifier and is put back on the way back. */
export async function oidcStart() {
  const verifier = randomUrlSafe(32);
  const state = randomUrlSafe(16);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, hash: location.hash }));
  const url = new URL(config.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope || "openid",
    state,
    code_challenge: base64Url(digest),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

/** OIDC: the way back. Returns the token, or null when this page load is not a sign-in's return. */
export async function oidcFinish() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "{}");
  sessionStorage.removeItem(PKCE_KEY);
  const hash = typeof saved.hash === "string" && saved.hash.startsWith("#") ? saved.hash : "";
  history.replaceState(null, "", `${redirectUri()}${hash}`);
  if (params.has("error")) throw new Error(params.get("error_description") || params.get("error"));
  if (!saved.state || saved.state !== params.get("state")) {
    throw new Error("the sign-in answer does not match the request: sign in again");
  }
  const response = await fetch(config.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: config.client_id,
      code_verifier: saved.verifier,
    }),
  });
  const data = await response.json().catch(() => ({}));
  // The API's authorizer checks the token's audience; the access token is the one meant for the API
  // unless the settings say otherwise ("use_token": "id_token").
  const token = data[config.use_token || "access_token"] || data.id_token;
  if (!response.ok || !token) throw new Error(data.error_description || data.error || "sign-in failed");
  sessionStorage.setItem(TOKEN_KEY, token);
  return token;
}
