// A batch's integration fields on its detail (API.md "Integration fields"): metadata, the Dropbox
// and Monday.com ids and switches; editable in any status through PATCH /batches/{id}.

import { api } from "./api.js";
import { h } from "./dom.js";
import { store } from "./store.js";
import { setFormError, toast } from "./toasts.js";

const editing = new Set(); // ids of batches whose fields are being edited
// Their open forms: the detail re-renders while files move on (every half second), and a new form
// built from the batch would drop what the user has typed so far; the same form is handed back.
const forms = new Map();

function stopEditing(id) {
  editing.delete(id);
  forms.delete(id);
}

function metadataText(metadata) {
  return Object.entries(metadata || {}).map(([k, v]) => `${k}=${v}`).join("\n");
}

/** "key=value" lines -> an object; throws naming the line that is not of that form. */
export function parseMetadata(text) {
  const out = {};
  text.split("\n").map((l) => l.trim()).filter(Boolean).forEach((line, n) => {
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`Metadata line ${n + 1} is not key=value: ${line}`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  });
  return out;
}

export function integrationsBlock(batch, rerender) {
  if (editing.has(batch.id)) {
    if (!forms.has(batch.id)) forms.set(batch.id, editor(batch, rerender));
    return forms.get(batch.id);
  }
  const entries = Object.entries(batch.metadata || {});
  return h(
    "section",
    { class: "integrations", "aria-label": "Integration fields" },
    h("div", { class: "integrations-head" },
      h("h3", {}, "Integrations"),
      h("button", { type: "button", class: "btn btn-small btn-quiet", dataset: { action: "edit-integrations" }, onclick: () => { editing.add(batch.id); rerender(); } }, "Edit")),
    h(
      "dl",
      { class: "meta" },
      item("Dropbox directory", batch.dropbox_directory_id || "–"),
      item("Auto upload", batch.auto_upload_enabled ? "on" : "off"),
      item("Monday.com item", batch.monday_item_id || "–"),
      item("Monday.com sync", batch.monday_sync_enabled ? "on" : "off"),
      item("Metadata", entries.length ? h("ul", { class: "kv" }, entries.map(([k, v]) => h("li", {}, h("span", { class: "mono" }, k), " = ", v))) : "–"),
    ),
  );
}

function item(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function editor(batch, rerender) {
  const error = h("div", { class: "form-error", role: "alert" });
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const dropbox = h("input", { id: `dbx-${batch.id}`, type: "text", maxlength: "255", value: batch.dropbox_directory_id || "" });
  const monday = h("input", { id: `mon-${batch.id}`, type: "text", maxlength: "255", value: batch.monday_item_id || "" });
  const auto = h("input", { type: "checkbox", id: `auto-${batch.id}` });
  auto.checked = Boolean(batch.auto_upload_enabled);
  const sync = h("input", { type: "checkbox", id: `sync-${batch.id}` });
  sync.checked = Boolean(batch.monday_sync_enabled);
  const metadata = h("textarea", { id: `md-${batch.id}`, rows: "3", spellcheck: "false" });
  metadata.value = metadataText(batch.metadata);
  const save = async (e) => {
    e.preventDefault();
    let body;
    try {
      body = {
        dropbox_directory_id: dropbox.value.trim() || null,
        monday_item_id: monday.value.trim() || null,
        auto_upload_enabled: auto.checked,
        monday_sync_enabled: sync.checked,
        metadata: parseMetadata(metadata.value),
      };
      const updated = await api.patchBatch(batch.id, body);
      stopEditing(batch.id);
      store.emit("batch-changed", { batch: updated });
      toast("Integration fields saved.");
    } catch (err) {
      setFormError(error, err);
    }
  };
  return h(
    "form",
    { class: "integrations integrations-form", "aria-label": "Edit integration fields", onsubmit: save },
    h("h3", {}, "Integrations"),
    h("div", { class: "field-row" }, field(`dbx-${batch.id}`, "Dropbox directory id", dropbox), field(`mon-${batch.id}`, "Monday.com item id", monday)),
    h("div", { class: "checks" },
      h("label", { class: "check" }, auto, " Auto upload to Dropbox"),
      h("label", { class: "check" }, sync, " Sync to Monday.com")),
    field(`md-${batch.id}`, "Metadata (one key=value per line)", metadata),
    error,
    h("div", { class: "form-actions" },
      h("button", { type: "submit", class: "btn btn-small btn-primary", dataset: { action: "save-integrations" } }, "Save"),
      h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: () => { stopEditing(batch.id); rerender(); } }, "Cancel")),
  );
}
