// The admin API of every service, as the console reaches it: its own service on this origin, the
// others through /console/api/{service} (see /console/services.json). Errors come back as
// problem+json and are turned into ApiError with the problem's fields.

const KEY = "longship.console.token";
let services = [];

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value.trim());
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

/** Takes `#token=...` out of the URL (keeping it in session storage only). True when one was there. */
export function takeTokenFromFragment() {
  const hash = window.location.hash;
  if (!hash.startsWith("#token=")) return false;
  const value = decodeURIComponent(hash.slice("#token=".length).split("&")[0]);
  if (value) setToken(value);
  history.replaceState(null, "", window.location.pathname + window.location.search + "#/sagas");
  return Boolean(value);
}

export async function loadServices() {
  const response = await fetch("/console/services.json", { cache: "no-store", credentials: "omit" });
  if (!response.ok) throw new ApiError(response.status, { title: "The console's service list is unavailable" }, "console");
  services = (await response.json()).services;
  return services;
}

export function serviceNames() {
  return services.map((s) => s.name);
}

/** The service that serves the page (the sagas live there). */
export function home() {
  return services.length ? services[0].name : "order";
}

export class ApiError extends Error {
  constructor(status, problem, service) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.service = service;
  }
}

/** Calls `method path` on `service`'s admin API; resolves to the JSON body (null for 204). */
export async function call(service, method, path, body) {
  const entry = services.find((s) => s.name === service);
  if (!entry) throw new ApiError(0, { title: "Unknown service", detail: service }, service);
  const headers = { Accept: "application/json, application/problem+json", Authorization: `Bearer ${token()}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(entry.base + path, init);
  } catch (e) {
    throw new ApiError(0, { title: "Network error", detail: `${service} could not be reached (${e.message})` }, service);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { title: response.statusText, detail: text.slice(0, 300) };
    throw new ApiError(response.status, problem, service);
  }
  return data;
}

/** A query string of the non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** What an error means for the operator, in one sentence, plus the problem's code and trace id. */
export function describe(error) {
  if (!(error instanceof ApiError)) return { text: String(error && error.message ? error.message : error) };
  const p = error.problem || {};
  const where = error.service ? `${error.service}: ` : "";
  let text;
  if (error.status === 401) text = "The token was refused (missing, expired or not signed by this platform). Sign in again.";
  else if (error.status === 403) text = "This token has neither the longship:operator nor the longship:admin scope.";
  else if (error.status === 409 && p.code === "saga.terminal") text = "Nothing changed: this saga has already finished.";
  else if (error.status === 409 && p.code === "saga.compensating") text = "Nothing changed: this saga is already compensating.";
  else if (error.status === 404) text = `Not found${p.detail ? `: ${p.detail}` : ""} (it may have been handled already, or belong to another tenant).`;
  else text = `${p.title || `HTTP ${error.status}`}${p.detail ? `: ${p.detail}` : ""}`;
  const fields = Array.isArray(p.errors) ? p.errors.map((f) => `${f.field}: ${f.message}`).join("; ") : "";
  return { text: where + text + (fields ? ` (${fields})` : ""), code: p.code, status: error.status, trace: p.trace_id };
}
