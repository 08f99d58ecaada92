// Per service: its dead letters (payload, redrive, discard with a reason), its outbox backlog and
// consumers, and the audit log of what operators did.

import { call, describe, query, serviceNames } from "./api.js";
import { ago, confirmAction, field, fill, h, table, when } from "./dom.js";

const dlFilters = { service: "", consumer: "", tenant: "" };

function problemBox(error) {
  const d = describe(error);
  return h("p", { class: "error-text", role: "alert" }, d.text, d.code ? [" ", h("code", {}, d.code)] : null);
}

function payloadText(payload) {
  if (payload === undefined || payload === null) return "(no payload)";
  return typeof payload === "string" ? payload : JSON.stringify(payload, null, 2);
}

/** One service's dead letters, with paging; redraws itself after an action. */
function deadLetterSection(service, ctx) {
  let items = [];
  let next = null;
  const body = h("div");
  const section = h("section", { class: "card", "aria-labelledby": `dl-${service}`, "data-service": service },
    h("h2", { id: `dl-${service}` }, service), body);
  const more = h("button", { type: "button" }, "Load more");
  const moreBox = h("div", { class: "more" }, more);
  const open = new Set();
  let lastPage = "";

  const fetchPage = (cursor, limit) => call(service, "GET", `/admin/v1/dead-letters${query({ consumer: dlFilters.consumer, tenant: dlFilters.tenant, cursor, limit })}`);

  const act = async (letter, discard) => {
    const answer = await confirmAction(discard
      ? { title: "Discard this dead letter?", text: `${letter.event_type} for ${letter.consumer} (tenant ${letter.tenant_id}) is dropped for good; the reason goes to the audit log.`, action: "Discard", danger: true, reason: true }
      : { title: "Redrive this dead letter?", text: `${letter.event_type} is delivered to ${letter.consumer} again (the inbox keeps it at most once).`, action: "Redrive" });
    if (!answer.ok) return;
    try {
      if (discard) await call(service, "DELETE", `/admin/v1/dead-letters/${letter.id}`, { reason: answer.reason });
      else await call(service, "POST", `/admin/v1/dead-letters/${letter.id}/redrive`, {});
      ctx.ok(discard ? `Discarded ${letter.event_type} (${service}).` : `Redrive accepted: ${letter.event_type} is delivered to ${letter.consumer} again.`);
    } catch (e) {
      ctx.fail(e);
    }
    await reload().catch(ctx.fail);
  };

  const rows = () => items.flatMap((found) => {
    // a message that was not an event envelope has no event id or type
    const letter = { ...found, event_type: found.event_type || "(not an event)", event_id: found.event_id || "" };
    const shown = open.has(letter.id);
    const toggle = h("button", { type: "button", class: "small", "aria-expanded": shown ? "true" : "false", onclick: () => { shown ? open.delete(letter.id) : open.add(letter.id); draw(); } }, shown ? "Hide payload" : "Payload");
    const row = h("tr", { "data-dead-letter": letter.id, "data-event-type": letter.event_type },
      h("td", {}, h("strong", {}, letter.event_type), h("div", { class: "mono muted", title: letter.event_id }, letter.event_id)),
      h("td", {}, letter.consumer), h("td", {}, letter.tenant_id || "-"),
      h("td", { class: "num" }, letter.deliveries), h("td", { class: "err" }, letter.error || ""),
      h("td", {}, when(letter.dead_lettered_at), h("div", { class: "muted" }, `${ago(letter.dead_lettered_at)} ago`)),
      h("td", {}, h("div", { class: "row-actions" }, toggle,
        h("button", { type: "button", class: "small redrive", onclick: () => act(letter, false) }, "Redrive"),
        h("button", { type: "button", class: "small danger discard", onclick: () => act(letter, true) }, "Discard…"))));
    if (!shown) return [row];
    return [row, h("tr", { class: "payload-row" }, h("td", { colspan: 7 },
      h("div", { class: "muted" }, `subject ${letter.subject}`), h("pre", { class: "payload" }, payloadText(letter.payload))))];
  });

  const draw = () => {
    fill(body, table(`${items.length} dead letter${items.length === 1 ? "" : "s"}`,
      ["Event", "Consumer", "Tenant", "Deliveries", "Error", "Dead-lettered", "Actions"], rows(), "No dead letters."), moreBox);
    moreBox.hidden = !next;
  };

  const reload = async () => {
    try {
      const page = await fetchPage(null, Math.min(100, Math.max(50, items.length)));
      // redraw only what changed, so focus and the reader's place survive a refresh
      if (lastPage && JSON.stringify(page) === lastPage) return;
      lastPage = JSON.stringify(page);
      items = page.items;
      next = page.next_cursor;
      draw();
    } catch (e) {
      fill(body, problemBox(e));
    }
  };

  more.addEventListener("click", async () => {
    try {
      const page = await fetchPage(next, 50);
      items = items.concat(page.items);
      next = page.next_cursor;
      draw();
    } catch (e) {
      ctx.fail(e);
    }
  });
  return { section, reload };
}

/** Dead letters of every service. Returns {refresh}. */
export function renderDeadLetters(view, ctx) {
  const services = serviceNames().filter((s) => !dlFilters.service || s === dlFilters.service);
  const sections = services.map((s) => deadLetterSection(s, ctx));
  const service = h("select", { id: "d-service" }, h("option", { value: "" }, "all"),
    serviceNames().map((s) => h("option", { value: s, selected: dlFilters.service === s }, s)));
  const consumer = h("input", { type: "text", id: "d-consumer", value: dlFilters.consumer, placeholder: "any", size: 18 });
  const tenant = h("input", { type: "text", id: "d-tenant", value: dlFilters.tenant, placeholder: "any", size: 14, pattern: "[a-z0-9][a-z0-9\\-]{0,62}" });
  const form = h("form", { class: "filters card", role: "search", "aria-label": "Filter dead letters" },
    field("d-service", "Service", service), field("d-consumer", "Consumer", consumer), field("d-tenant", "Tenant", tenant),
    h("button", { type: "submit", class: "primary" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    Object.assign(dlFilters, { service: service.value, consumer: consumer.value.trim(), tenant: tenant.value.trim() });
    ctx.rerender();
  });
  fill(view, h("div", { class: "toolbar" }, h("h1", {}, "Dead letters"),
    h("span", { class: "muted" }, "Events a consumer gave up on. Fix the cause, then redrive; or discard with a reason.")),
  form, sections.map((s) => s.section));
  const refresh = () => Promise.all(sections.map((s) => s.reload()));
  return { first: refresh, refresh };
}

function outboxCard(service, state) {
  return h("section", { class: "card", "aria-labelledby": `ob-${service}`, "data-service": service },
    h("h2", { id: `ob-${service}` }, service),
    h("p", {}, "Outbox: ", h("strong", {}, String(state.pending)), " pending",
      state.pending ? `; oldest ${state.oldest_pending_age_seconds ?? 0} s old` : ""),
    table("Consumers", ["Consumer", "Pending", "Awaiting ack", "Dead letters"],
      (state.consumers || []).map((c) => [c.name, h("td", { class: "num" }, c.pending ?? "-"), h("td", { class: "num" }, c.ack_pending ?? "-"), h("td", { class: "num" }, c.dead_letters ?? "-")]),
      "This service has no consumers."));
}

/** Outbox backlog and consumer state per service. Returns {refresh}. */
export function renderOutbox(view) {
  const grid = h("div", { class: "grid" });
  fill(view, h("div", { class: "toolbar" }, h("h1", {}, "Outbox & consumers"),
    h("span", { class: "muted" }, "Events waiting to be published, and what each consumer has yet to handle.")), grid);
  const refresh = async () => {
    const cards = await Promise.all(serviceNames().map(async (service) => {
      try {
        return outboxCard(service, await call(service, "GET", "/admin/v1/outbox"));
      } catch (e) {
        return h("section", { class: "card", "data-service": service }, h("h2", {}, service), problemBox(e));
      }
    }));
    fill(grid, cards);
  };
  return { first: refresh, refresh };
}

let auditService = "";

/** The audit log of one service. Returns {refresh}. */
export function renderAudit(view, ctx) {
  const names = serviceNames();
  if (!names.includes(auditService)) auditService = names[0] || "";
  let items = [];
  let next = null;
  const holder = h("div", { class: "card" });
  const more = h("button", { type: "button" }, "Load more");
  const moreBox = h("div", { class: "more" }, more);
  const select = h("select", { id: "a-service" }, names.map((s) => h("option", { value: s, selected: s === auditService }, s)));
  select.addEventListener("change", () => {
    auditService = select.value;
    ctx.rerender();
  });
  const draw = () => {
    fill(holder, table(`What operators did on ${auditService}, newest first`, ["When", "Actor", "Tenant", "Action", "Target", "Reason"],
      items.map((e) => [when(e.at), e.actor, e.tenant_id || "-", h("td", {}, h("code", {}, e.action)), h("td", { class: "mono" }, e.target), e.reason || ""]),
      "No operator actions recorded."), moreBox);
    moreBox.hidden = !next;
  };
  const fetchPage = (cursor, limit) => call(auditService, "GET", `/admin/v1/audit${query({ cursor, limit })}`);
  more.addEventListener("click", async () => {
    try {
      const page = await fetchPage(next, 50);
      items = items.concat(page.items);
      next = page.next_cursor;
      draw();
    } catch (e) {
      ctx.fail(e);
    }
  });
  fill(view, h("div", { class: "toolbar" }, h("h1", {}, "Audit log"),
    h("form", { class: "filters", "aria-label": "Audit log of" }, field("a-service", "Service", select))), holder);
  const refresh = async () => {
    if (items.length > 100) return;
    const page = await fetchPage(null, Math.max(50, items.length));
    if (JSON.stringify(page.items) === JSON.stringify(items) && items.length) return;
    items = page.items;
    next = page.next_cursor;
    draw();
  };
  return { first: refresh, refresh };
}
