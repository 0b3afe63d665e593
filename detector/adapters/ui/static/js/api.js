// The JSON API client: the key lives in sessionStorage (gone when the tab closes) and goes
// in the X-API-Key header; errors arrive as RFC 9457 problem documents.

const KEY_ITEM = "querywatch.apiKey";

/** A problem document in words: its detail, and each field error's place and message. */
function problemText(status, problem) {
  const detail = problem?.detail || problem?.title || `HTTP ${status}`;
  const fields = (problem?.errors ?? [])
    .map((e) => `${(e.loc ?? []).filter((part) => part !== "query" && part !== "body").join(".")}: ${e.msg}`);
  return fields.length ? `${detail} (${fields.join("; ")})` : detail;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

export function saveApiKey(key) {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function forgetApiKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

/** URL of an API path, relative to the page so that a reverse-proxy prefix still works. */
export function apiUrl(path, params) {
  const url = new URL(`../${path.replace(/^\//, "")}`, document.baseURI);
  for (const [name, value] of Object.entries(params ?? {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

export async function api(path, { method = "GET", params, body, key = apiKey() } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(apiUrl(path, params), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("querywatch:unauthorized"));
    throw new ApiError(response.status, data);
  }
  return data;
}
