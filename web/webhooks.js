// The Webhooks screen: create a webhook (its signing secret is shown once), list them, ping one,
// read its delivery log and redeliver an event. API.md "Webhooks".

import { api } from "./api.js";
import { $, badge, h, timeEl } from "./dom.js";
import { confirmDialog, setFormError, showError, toast } from "./toasts.js";

export const EVENT_TYPES = [
  "batch.created", "batch.started", "batch.completed", "batch.completed_with_errors",
  "batch.failed", "batch.cancelled", "batch.deleted", "archive.ready",
];

const state = { webhooks: [], open: null, deliveries: [], cursor: null };

export async function loadWebhooks() {
  try {
    state.webhooks = await api.webhooks();
    $("#webhooks-error").textContent = "";
  } catch (err) {
    if (err.status !== 401) setFormError($("#webhooks-error"), err);
    return;
  }
  renderList();
  if (state.open && !state.webhooks.some((w) => w.id === state.open)) closeLog();
}

function renderList() {
  const rows = $("#webhook-rows");
  rows.textContent = "";
  $("#webhooks-empty").hidden = state.webhooks.length > 0;
  $("#webhook-table").hidden = state.webhooks.length === 0;
  for (const w of state.webhooks) {
    rows.append(
      h(
        "tr",
        { dataset: { webhookId: w.id }, class: state.open === w.id ? "selected" : null },
        h("th", { scope: "row", "data-label": "URL" }, h("span", { class: "mono small break" }, w.url),
          w.description ? h("span", { class: "sub muted small" }, w.description) : null),
        h("td", { "data-label": "Events", class: "small" }, w.events.join(", ")),
        h("td", { "data-label": "Active" }, w.active ? "active" : h("span", { class: "muted" }, "inactive")),
        h(
          "td",
          { class: "row-actions" },
          h("button", { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "ping" }, onclick: () => ping(w) }, "Ping"),
          h("button", { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "deliveries" }, "aria-expanded": state.open === w.id ? "true" : "false", onclick: () => openLog(w) }, "Deliveries"),
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", dataset: { action: "delete" }, onclick: () => remove(w) }, "Delete"),
        ),
      ),
    );
  }
}

async function ping(w) {
  try {
    await api.pingWebhook(w.id);
    toast(`Ping queued for ${w.url}.`);
    if (state.open === w.id) await openLog(w, { keep: true });
  } catch (err) {
    showError(err, "Ping failed");
  }
}

async function remove(w) {
  const ok = await confirmDialog({ title: "Delete webhook?", body: `${w.url} will get no more events.` });
  if (!ok) return;
  try {
    await api.deleteWebhook(w.id);
    toast("Webhook deleted.");
  } catch (err) {
    if (err.status !== 404) return showError(err, "Delete failed");
  }
  await loadWebhooks();
}

function closeLog() {
  state.open = null;
  $("#deliveries-card").hidden = true;
  renderList();
}

async function openLog(w, { keep = false, more = false } = {}) {
  if (state.open === w.id && !keep && !more) return closeLog();
  try {
    const page = await api.deliveries(w.id, more ? state.cursor : null);
    state.deliveries = more ? [...state.deliveries, ...page.deliveries] : page.deliveries;
    state.cursor = page.next_cursor;
  } catch (err) {
    return showError(err, "Could not load the deliveries");
  }
  state.open = w.id;
  renderList();
  renderLog(w);
}

function renderLog(w) {
  $("#deliveries-card").hidden = false;
  $("#deliveries-for").textContent = w.url;
  const rows = $("#delivery-rows");
  rows.textContent = "";
  $("#deliveries-empty").hidden = state.deliveries.length > 0;
  for (const d of state.deliveries) {
    const answer = d.last_error || (d.last_status_code ? `HTTP ${d.last_status_code}` : "–");
    rows.append(
      h(
        "tr",
        { dataset: { deliveryId: d.id, status: d.status } },
        h("td", { "data-label": "Created" }, timeEl(d.created_at)),
        h("th", { scope: "row", "data-label": "Event" }, d.event_type, h("span", { class: "sub mono small muted" }, d.event_id)),
        h("td", { "data-label": "Status" }, badge(d.status)),
        h("td", { "data-label": "Attempts" }, `${d.attempts} ${d.attempts === 1 ? "attempt" : "attempts"}`),
        h("td", { "data-label": "Last answer", class: "small" }, answer,
          d.status === "pending" && d.next_attempt_at ? h("span", { class: "sub muted small" }, "next try ", timeEl(d.next_attempt_at)) : null),
        h("td", { class: "row-actions" },
          h("button", { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "redeliver" }, onclick: () => redeliver(w, d) }, "Redeliver")),
      ),
    );
  }
  $("#deliveries-more").hidden = !state.cursor;
}

async function redeliver(w, d) {
  try {
    await api.redeliver(w.id, d.id);
    toast(`Event ${d.event_type} queued again.`);
    await openLog(w, { keep: true });
  } catch (err) {
    showError(err, "Redeliver failed");
  }
}

function chosenEvents() {
  if ($("#wh-all").checked) return ["*"];
  return [...document.querySelectorAll("#wh-events input:checked")].map((i) => i.value);
}

async function create(e) {
  e.preventDefault();
  const form = $("#webhook-form");
  setFormError($("#webhook-form-error"), null);
  const events = chosenEvents();
  if (!events.length) return setFormError($("#webhook-form-error"), new Error("Choose at least one event, or all events."));
  const button = $("#webhook-save");
  button.disabled = true;
  try {
    const created = await api.createWebhook({ url: $("#wh-url").value.trim(), events, description: $("#wh-description").value.trim() });
    form.reset();
    syncEventChoices();
    showSecret(created);
    await loadWebhooks();
  } catch (err) {
    setFormError($("#webhook-form-error"), err);
  } finally {
    button.disabled = false;
  }
}

function showSecret({ webhook, secret }) {
  const box = $("#webhook-secret");
  const value = h("code", { class: "mono break", id: "webhook-secret-value" }, secret);
  const copy = h("button", { type: "button", class: "btn btn-small btn-secondary", onclick: async () => {
    try {
      await navigator.clipboard.writeText(secret);
      toast("Secret copied.");
    } catch {
      toast("Select the secret and copy it.");
    }
  } }, "Copy");
  const done = h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: () => { box.hidden = true; box.textContent = ""; } }, "I have saved it");
  box.replaceChildren(
    h("p", {}, h("strong", {}, "Signing secret for "), webhook.url),
    h("p", { class: "muted small" }, "Shown only now: it verifies the Imgbatch-Signature header of every delivery."),
    h("div", { class: "secret-row" }, value, copy, done),
  );
  box.hidden = false;
}

function syncEventChoices() {
  const all = $("#wh-all").checked;
  for (const input of document.querySelectorAll("#wh-events input")) input.disabled = all;
}

export function setupWebhooks() {
  const list = $("#wh-events");
  for (const type of EVENT_TYPES) {
    list.append(h("label", { class: "check" }, h("input", { type: "checkbox", value: type, name: "events" }), " ", type));
  }
  $("#wh-all").addEventListener("change", syncEventChoices);
  syncEventChoices();
  $("#webhook-form").addEventListener("submit", create);
  $("#deliveries-close").addEventListener("click", closeLog);
  $("#deliveries-more").addEventListener("click", () => {
    const w = state.webhooks.find((x) => x.id === state.open);
    if (w) openLog(w, { more: true });
  });
  $("#deliveries-refresh").addEventListener("click", () => {
    const w = state.webhooks.find((x) => x.id === state.open);
    if (w) openLog(w, { keep: true });
  });
}
