// The console's shell: the token (session storage only; `#token=...` accepted once), the views by
// URL fragment (#/sagas, #/sagas/{id}, #/dead-letters, #/outbox, #/audit), notices, and the
// auto-refresh of the view shown.

import { describe, forgetToken, loadServices, setToken, takeTokenFromFragment, token } from "./api.js";
import { fill, h } from "./dom.js";
import { renderSaga, renderSagas } from "./sagas.js";
import { renderAudit, renderDeadLetters, renderOutbox } from "./operations.js";

const REFRESH_MS = { sagas: 5000, saga: 2000, "dead-letters": 5000, outbox: 5000, audit: 10000 };
const $ = (id) => document.getElementById(id);
let current = null;
let timer = null;
let generation = 0;

function notice(kind, ...content) {
  const box = $("notice");
  box.className = `notice ${kind}`;
  fill(box, h("button", { type: "button", class: "close", "aria-label": "Dismiss", onclick: () => { box.hidden = true; } }, "×"), ...content);
  box.hidden = false;
}

const ctx = {
  ok(message) {
    notice("ok", message);
  },
  fail(error) {
    const d = describe(error);
    if (d.status === 401) return signIn(d.text);
    notice("error", h("strong", {}, d.text),
      d.code || d.trace ? h("div", { class: "problem" },
        d.code ? ["code ", h("code", {}, d.code)] : null,
        d.status ? ` · HTTP ${d.status}` : null,
        d.trace ? [" · trace ", h("code", {}, d.trace)] : null) : null);
    return undefined;
  },
  rerender() {
    route();
  },
};

function signIn(message) {
  stopRefresh();
  forgetToken();
  $("view").hidden = true;
  $("forget").hidden = true;
  $("signin").hidden = false;
  const error = $("token-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("token-input").focus();
}

function stopRefresh() {
  if (timer) clearInterval(timer);
  timer = null;
}

function parseRoute() {
  const path = (window.location.hash || "#/sagas").replace(/^#\/?/, "");
  const [name, id] = path.split("/");
  if (name === "sagas" && id) return { name: "saga", id: decodeURIComponent(id) };
  if (["sagas", "dead-letters", "outbox", "audit"].includes(name)) return { name };
  return { name: "sagas" };
}

function route() {
  if (!token()) return signIn();
  stopRefresh();
  $("signin").hidden = true;
  $("forget").hidden = false;
  const view = $("view");
  view.hidden = false;
  const r = parseRoute();
  for (const link of document.querySelectorAll("nav a")) {
    const active = link.dataset.view === (r.name === "saga" ? "sagas" : r.name);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const renderers = {
    sagas: () => renderSagas(view, ctx),
    saga: () => renderSaga(view, ctx, r.id),
    "dead-letters": () => renderDeadLetters(view, ctx),
    outbox: () => renderOutbox(view, ctx),
    audit: () => renderAudit(view, ctx),
  };
  const mine = ++generation;
  current = renderers[r.name]();
  const stamp = () => { $("refreshed").textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${REFRESH_MS[r.name] / 1000} s`; };
  current.first().then(stamp, ctx.fail);
  timer = setInterval(() => {
    // no refresh behind a dialog, in a hidden tab, or for a view already left
    if (mine !== generation || document.hidden || $("confirm").open) return;
    current.refresh().then(stamp, ctx.fail);
  }, REFRESH_MS[r.name]);
}

async function start() {
  takeTokenFromFragment();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    setToken(value);
    $("token-input").value = "";
    if (!window.location.hash.startsWith("#/")) history.replaceState(null, "", "#/sagas");
    route();
  });
  $("forget").addEventListener("click", () => signIn("Token forgotten."));
  window.addEventListener("hashchange", () => {
    // a notice belongs to the view it was given in
    $("notice").hidden = true;
    takeTokenFromFragment();
    route();
  });
  try {
    await loadServices();
  } catch (e) {
    ctx.fail(e);
    return;
  }
  route();
}

start();
