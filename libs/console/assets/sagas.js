// The sagas: a filtered, paged list (stuck ones highlighted with their last error), and one saga
// with its steps, its history as a timeline, and the operator's actions retry and cancel.

import { call, describe, home, query } from "./api.js";
import { ago, confirmAction, field, fill, h, pill, table, when } from "./dom.js";

const TERMINAL = ["COMPLETED", "COMPENSATED"];
const STUCK_ATTEMPTS = 5;
const filters = { status: "", tenant: "", saga_type: "", stuck: false };

/** Stuck as the API defines it: not terminal, and past its deadline or attempted 5 times or more. */
export function isStuck(saga) {
  if (TERMINAL.includes(saga.status)) return false;
  const late = saga.deadline && new Date(saga.deadline).getTime() < Date.now();
  return Boolean(late) || (saga.attempts || 0) >= STUCK_ATTEMPTS;
}

function shortId(id) {
  return id ? `${id.slice(0, 8)}…${id.slice(-4)}` : "-";
}

function sagaRow(saga) {
  const stuck = isStuck(saga);
  return h("tr", { class: stuck ? "stuck" : "", "data-saga": saga.id },
    h("td", {}, h("a", { href: `#/sagas/${saga.id}`, class: "mono", title: saga.id, "aria-label": `Saga ${saga.id}` }, shortId(saga.id))),
    h("td", {}, `${saga.saga_type} v${saga.version}`),
    h("td", {}, saga.tenant_id),
    h("td", {}, pill(saga.status), stuck ? [" ", pill("stuck", "stuck")] : null),
    h("td", {}, saga.current_step || "-"),
    h("td", { class: "num" }, saga.attempts ?? 0),
    h("td", { class: "err" }, saga.last_error || saga.failure_reason || ""),
    h("td", {}, when(saga.updated_at), h("div", { class: "muted" }, `${ago(saga.updated_at)} ago`)),
    h("td", {}, when(saga.deadline)));
}

function filterForm(onApply) {
  const status = h("select", { id: "f-status", name: "status" },
    ["", "RUNNING", "COMPENSATING", "COMPLETED", "COMPENSATED"].map((s) =>
      h("option", { value: s, selected: filters.status === s }, s || "any")));
  const tenant = h("input", { type: "text", id: "f-tenant", name: "tenant", value: filters.tenant, pattern: "[a-z0-9][a-z0-9\\-]{0,62}", placeholder: "any", size: 14 });
  const type = h("input", { type: "text", id: "f-type", name: "saga_type", value: filters.saga_type, placeholder: "any", size: 14 });
  const stuck = h("input", { type: "checkbox", id: "f-stuck", name: "stuck", checked: filters.stuck });
  const form = h("form", { class: "filters card", role: "search", "aria-label": "Filter sagas" },
    field("f-status", "Status", status),
    field("f-tenant", "Tenant", tenant),
    field("f-type", "Saga type", type),
    h("div", { class: "check" }, stuck, h("label", { for: "f-stuck" }, "Stuck only")),
    h("button", { type: "submit", class: "primary" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    Object.assign(filters, { status: status.value, tenant: tenant.value.trim(), saga_type: type.value.trim(), stuck: stuck.checked });
    onApply();
  });
  return form;
}

/** The sagas list. Returns {refresh}. */
export function renderSagas(view, ctx) {
  let items = [];
  let next = null;
  const holder = h("div", { class: "card" });
  const more = h("button", { type: "button", id: "load-more" }, "Load more");
  const moreBox = h("div", { class: "more" }, more);

  const draw = () => {
    const stuckCount = items.filter(isStuck).length;
    fill(holder, table(
      `${items.length} saga${items.length === 1 ? "" : "s"} shown, newest first${stuckCount ? `; ${stuckCount} stuck` : ""}`,
      ["Saga", "Type", "Tenant", "Status", "Current step", "Attempts", "Last error", "Updated", "Deadline"],
      items.map(sagaRow),
      "No saga matches these filters."), moreBox);
    moreBox.hidden = !next;
  };

  const fetchPage = (cursor, limit) => call(home(), "GET", `/admin/v1/sagas${query({ ...filters, stuck: filters.stuck ? "true" : "", cursor, limit })}`);

  const load = async () => {
    const page = await fetchPage(null, 50);
    items = page.items;
    next = page.next_cursor;
    draw();
  };

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await fetchPage(next, 50);
      items = items.concat(page.items);
      next = page.next_cursor;
      draw();
    } catch (e) {
      ctx.fail(e);
    } finally {
      more.disabled = false;
    }
  });

  fill(view,
    h("div", { class: "toolbar" }, h("h1", {}, "Sagas"),
      h("div", { class: "right" }, h("span", { class: "muted" }, "Stuck: not finished and past the deadline, or a step tried 5 times or more."))),
    filterForm(() => load().catch(ctx.fail)),
    holder);
  return {
    first: load,
    // the list refreshes its first pages in place (as many rows as are shown, up to 100)
    refresh: async () => {
      if (items.length > 100) return;
      const page = await fetchPage(null, Math.max(50, items.length));
      // redraw only what changed, so focus and the reader's place survive a refresh
      if (JSON.stringify(page.items) === JSON.stringify(items)) return;
      items = page.items;
      next = page.next_cursor;
      draw();
    },
  };
}

function facts(saga) {
  const pairs = [
    ["Type", `${saga.saga_type} v${saga.version}`], ["Tenant", saga.tenant_id],
    ["Status", [pill(saga.status), isStuck(saga) ? [" ", pill("stuck", "stuck")] : null]], ["Current step", `${saga.current_step || "-"} (#${saga.step_index})`],
    ["Attempts", saga.attempts], ["Failure reason", saga.failure_reason || "-"],
    ["Deadline", when(saga.deadline)], ["Next attempt", when(saga.next_attempt_at)],
    ["Created", when(saga.created_at)], ["Updated", when(saga.updated_at)],
  ];
  const dl = h("dl", { class: "facts" });
  for (const [name, value] of pairs) dl.append(h("dt", {}, name), h("dd", {}, value));
  if (saga.last_error) dl.append(h("dt", {}, "Last error"), h("dd", { class: "err" }, saga.last_error));
  return dl;
}

function timelineEntry(entry) {
  const operator = Boolean(entry.actor) && entry.actor !== "engine";
  // an operator's entry carries the reason they gave; the engine's, what failed
  const note = entry.error
    ? h("div", { class: operator ? "reason" : "err" }, operator ? `reason: ${entry.error}` : entry.error)
    : null;
  return h("li", { class: operator ? "operator" : entry.error ? "failed" : "" },
    h("div", { class: "tl-head" },
      when(entry.at), pill(entry.state),
      h("strong", {}, entry.step || "-"),
      entry.attempt ? h("span", { class: "muted" }, `attempt ${entry.attempt}`) : null,
      h("span", { class: "actor" }, `by ${entry.actor || "engine"}`)),
    note);
}

function timeline(history) {
  if (!history || history.length === 0) return h("p", { class: "muted" }, "No history recorded.");
  return h("ol", { class: "timeline", "aria-label": "History, oldest first" }, history.map(timelineEntry));
}

async function act(ctx, saga, kind, reload) {
  const cancel = kind === "cancel";
  const answer = await confirmAction(cancel
    ? { title: "Cancel this saga?", text: `Saga ${saga.id} (tenant ${saga.tenant_id}) will compensate every completed step in reverse order; its order ends CANCELLED (operator_cancelled).`, action: "Cancel saga", danger: true, reason: true }
    : { title: "Retry this saga?", text: `Saga ${saga.id} (tenant ${saga.tenant_id}): its next attempt becomes due now, backoff cleared.`, action: "Retry now" });
  if (!answer.ok) return;
  try {
    await call(home(), "POST", `/admin/v1/sagas/${saga.id}/${kind}`, cancel ? { reason: answer.reason } : {});
    ctx.ok(cancel ? "Cancel accepted: the saga is compensating its completed steps." : "Retry accepted: the saga's next attempt is due now.");
  } catch (e) {
    ctx.fail(e);
  }
  await reload().catch(ctx.fail);
}

/** One saga: facts, steps, timeline, data and actions. Returns {refresh}. */
export function renderSaga(view, ctx, id) {
  const body = h("div");
  fill(view, h("p", {}, h("a", { href: "#/sagas" }, "← All sagas")), body);
  let shown = "";
  const load = async () => {
    const saga = await call(home(), "GET", `/admin/v1/sagas/${encodeURIComponent(id)}`);
    const json = JSON.stringify(saga);
    if (json === shown) return;
    shown = json;
    const terminal = TERMINAL.includes(saga.status);
    const retry = h("button", { type: "button", id: "retry", disabled: terminal, onclick: () => act(ctx, saga, "retry", load) }, "Retry");
    const cancel = h("button", { type: "button", id: "cancel", class: "danger", disabled: terminal || saga.status === "COMPENSATING", onclick: () => act(ctx, saga, "cancel", load) }, "Cancel…");
    fill(body,
      h("div", { class: "toolbar" },
        h("h1", {}, "Saga ", h("span", { class: "mono" }, saga.id)),
        h("div", { class: "right" }, retry, cancel)),
      h("section", { class: "card", "aria-labelledby": "facts-title" }, h("h2", { id: "facts-title" }, "Summary"), facts(saga)),
      h("section", { class: "card", "aria-labelledby": "steps-title" }, h("h2", { id: "steps-title" }, "Steps"),
        table("Steps in order", ["Step", "Status", "Attempts", "Last error"],
          (saga.steps || []).map((s) => [s.name, pill(s.status), h("td", { class: "num" }, s.attempts ?? 0), h("td", { class: "err" }, s.last_error || "")]))),
      h("section", { class: "card", id: "timeline", "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline(saga.history)),
      h("section", { class: "card" }, h("details", {}, h("summary", {}, "Saga data"), h("pre", { class: "payload" }, JSON.stringify(saga.data, null, 2)))));
  };
  return { first: load, refresh: load };
}

export { describe };
