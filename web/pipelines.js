// The Pipelines screen: the list of processing presets and the create/edit form.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { store } from "./store.js";
import { confirmDialog, setFormError, toast } from "./toasts.js";

export function describePipeline(p) {
  const size = p.width || p.height ? `${p.width || "auto"}×${p.height || "auto"}` : "original size";
  return `${String(p.format).toUpperCase()}, ${size}`;
}

/** Load the pipelines into the store; the table here and the submit form's choices follow. */
export async function loadPipelines() {
  let pipelines;
  try {
    pipelines = await api.pipelines();
    $("#pipelines-error").textContent = "";
  } catch (err) {
    if (err.status !== 401) setFormError($("#pipelines-error"), err);
    return;
  }
  store.state.pipelines = pipelines.sort((a, b) => a.name.localeCompare(b.name));
  store.emit("pipelines");
}

function renderTable() {
  const { pipelines } = store.state;
  const rows = $("#pipeline-rows");
  rows.textContent = "";
  $("#pipelines-empty").hidden = pipelines.length > 0;
  $("#pipeline-table").hidden = pipelines.length === 0;
  for (const p of pipelines) {
    const quality = p.format === "png" ? `compression ${p.compression}` : `quality ${p.quality}`;
    const options = [p.keep_metadata ? "keeps metadata" : null, p.upscale ? "upscales" : null].filter(Boolean);
    rows.append(
      h(
        "tr",
        { dataset: { pipelineId: p.id } },
        h(
          "th",
          { scope: "row", "data-label": "Name" },
          h("span", { class: "pipeline-name" }, p.name),
          options.length ? h("span", { class: "sub muted small" }, options.join(" · ")) : null,
        ),
        h(
          "td",
          { "data-label": "Output" },
          h("span", { class: "nowrap" }, describePipeline(p)),
          h("span", { class: "sub muted small" }, `fit: ${p.fit}`),
        ),
        h("td", { "data-label": "Quality", class: "nowrap" }, quality),
        h(
          "td",
          { "data-label": "Background", class: "nowrap" },
          h("span", { class: "swatch", style: `background:${p.background}`, "aria-hidden": "true" }),
          h("span", { class: "mono small" }, p.background),
        ),
        h(
          "td",
          { class: "row-actions" },
          h("button", { type: "button", class: "btn btn-small btn-secondary", "aria-label": `Edit ${p.name}`, onclick: () => editPipeline(p) }, "Edit"),
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Delete ${p.name}`, onclick: () => deletePipeline(p) }, "Delete"),
        ),
      ),
    );
  }
}

function resetForm() {
  const form = $("#pipeline-form");
  form.reset();
  $("#pl-id").value = "";
  $("#pl-background-value").textContent = $("#pl-background").value;
  $("#pipeline-form-title").textContent = "New pipeline";
  $("#pipeline-save").textContent = "Create pipeline";
  $("#pipeline-cancel-edit").hidden = true;
  $("#pipeline-form-error").textContent = "";
}

function editPipeline(p) {
  resetForm();
  $("#pl-id").value = p.id;
  $("#pl-name").value = p.name;
  $("#pl-format").value = p.format;
  $("#pl-fit").value = p.fit || "contain";
  $("#pl-width").value = p.width ?? "";
  $("#pl-height").value = p.height ?? "";
  $("#pl-quality").value = p.quality ?? 85;
  $("#pl-compression").value = p.compression ?? 70;
  $("#pl-background").value = p.background || "#ffffff";
  $("#pl-background-value").textContent = $("#pl-background").value;
  $("#pl-keep-metadata").checked = Boolean(p.keep_metadata);
  $("#pl-upscale").checked = Boolean(p.upscale);
  $("#pipeline-form-title").textContent = `Edit pipeline “${p.name}”`;
  $("#pipeline-save").textContent = "Save changes";
  $("#pipeline-cancel-edit").hidden = false;
  $("#pl-name").focus();
}

/** The form as the API's pipeline object; numbers stay as typed so the API judges them. */
function formSpec() {
  const num = (id) => {
    const raw = $(id).value.trim();
    if (raw === "") return undefined;
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw;
  };
  const spec = {
    name: $("#pl-name").value,
    format: $("#pl-format").value,
    fit: $("#pl-fit").value,
    width: num("#pl-width"),
    height: num("#pl-height"),
    quality: num("#pl-quality"),
    compression: num("#pl-compression"),
    background: $("#pl-background").value,
    keep_metadata: $("#pl-keep-metadata").checked,
    upscale: $("#pl-upscale").checked,
  };
  for (const key of Object.keys(spec)) if (spec[key] === undefined) delete spec[key];
  return spec;
}

async function savePipeline(event) {
  event.preventDefault();
  const id = $("#pl-id").value;
  const error = $("#pipeline-form-error");
  const button = $("#pipeline-save");
  error.textContent = "";
  button.disabled = true;
  try {
    const saved = id ? await api.replacePipeline(id, formSpec()) : await api.createPipeline(formSpec());
    toast(id ? `Saved pipeline “${saved.name}”.` : `Created pipeline “${saved.name}”.`, { kind: "success" });
    resetForm();
    await loadPipelines();
  } catch (err) {
    setFormError(error, err);
  } finally {
    button.disabled = false;
  }
}

async function deletePipeline(p) {
  const ok = await confirmDialog({
    title: `Delete pipeline “${p.name}”?`,
    body: "Batches already submitted keep their copy of it; new batches can no longer use it.",
    confirmLabel: "Delete pipeline",
  });
  if (!ok) return;
  try {
    await api.deletePipeline(p.id);
    toast(`Deleted pipeline “${p.name}”.`, { kind: "success" });
    if ($("#pl-id").value === p.id) resetForm();
    await loadPipelines();
  } catch (err) {
    setFormError($("#pipelines-error"), err);
  }
}

export function setupPipelines() {
  store.on("pipelines", renderTable);
  $("#pipeline-form").addEventListener("submit", savePipeline);
  $("#pipeline-cancel-edit").addEventListener("click", resetForm);
  $("#new-pipeline").addEventListener("click", () => {
    resetForm();
    $("#pl-name").focus();
  });
  $("#pl-background").addEventListener("input", (e) => {
    $("#pl-background-value").textContent = e.target.value;
  });
}
