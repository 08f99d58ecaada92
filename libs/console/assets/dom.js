// Small DOM helpers. Text always goes in as text nodes (never as HTML), so nothing an API returns
// can inject markup or script.

/** An element: h("td", {class: "num"}, "12", child, ...). Attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status pill. */
export function pill(text, extra = "") {
  return h("span", { class: `pill ${text || ""} ${extra}`.trim() }, text || "-");
}

/** A timestamp as local time, with the exact value in a <time> element. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "-");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

/** "3 min ago" style age of an ISO timestamp. */
export function ago(iso) {
  const ms = Date.now() - new Date(iso).getTime();
  if (!Number.isFinite(ms)) return "";
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 60) return `${s} s`;
  if (Math.abs(s) < 3600) return `${Math.round(s / 60)} min`;
  if (Math.abs(s) < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** A table with a caption, headers and rows (each row an array of cells or a <tr>). */
export function table(caption, headers, rows, empty = "Nothing here.") {
  const body = h("tbody");
  if (rows.length === 0) {
    body.append(h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, empty)));
  }
  for (const row of rows) {
    if (row instanceof Node) body.append(row);
    else body.append(h("tr", {}, row.map((cell) => (cell instanceof Node && cell.tagName === "TD" ? cell : h("td", {}, cell)))));
  }
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    body);
}

/** A labelled form field: a text input or a select of options [value, label]. */
export function field(id, label, control) {
  return h("div", {}, h("label", { for: id }, label), control);
}

const dialog = () => document.getElementById("confirm");

/**
 * Asks for confirmation in the page's modal dialog. With `reason: true` a reason is required.
 * Resolves to {ok, reason}.
 */
export function confirmAction({ title, text, action, danger = false, reason = false }) {
  const box = dialog();
  const form = document.getElementById("confirm-form");
  const reasonField = document.getElementById("confirm-reason-field");
  const reasonInput = document.getElementById("confirm-reason");
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  yes.textContent = action;
  yes.className = danger ? "primary danger" : "primary";
  reasonField.hidden = !reason;
  reasonInput.required = reason;
  reasonInput.value = "";
  return new Promise((resolve) => {
    const done = (result) => {
      form.removeEventListener("submit", onSubmit);
      no.removeEventListener("click", onNo);
      box.removeEventListener("cancel", onNo);
      box.close();
      resolve(result);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const text = reasonInput.value.trim();
      if (reason && (text.length < 1 || text.length > 500)) {
        reasonInput.setCustomValidity("Give a reason of 1-500 characters.");
        reasonInput.reportValidity();
        return;
      }
      reasonInput.setCustomValidity("");
      done({ ok: true, reason: text });
    };
    const onNo = (event) => {
      event.preventDefault();
      done({ ok: false });
    };
    form.addEventListener("submit", onSubmit);
    no.addEventListener("click", onNo);
    box.addEventListener("cancel", onNo);
    box.showModal();
    (reason ? reasonInput : yes).focus();
  });
}
