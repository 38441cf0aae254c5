// The Pipelines screen: the list of processing presets and the create/edit form.

import { ApiError, api } from "./api.js";
import { $, h } from "./dom.js";
import { formatBytes } from "./format.js";
import { store } from "./store.js";
import { confirmDialog, setFormError, toast } from "./toasts.js";

// Form control of each pipeline field the API may name in its Errors list.
const CONTROLS = {
  name: "#pl-name", format: "#pl-format", fit: "#pl-fit", width: "#pl-width", height: "#pl-height",
  quality: "#pl-quality", compression: "#pl-compression", background: "#pl-background",
  keep_metadata: "#pl-keep-metadata", upscale: "#pl-upscale", tiff_compression: "#pl-tiff-compression",
  embed_icc: "#pl-embed-icc", trim: "#pl-trim", dpi: "#pl-dpi", sharpen: "#pl-sharpen",
  max_bytes: "#pl-max-bytes", filename: "#pl-filename",
};

/** What a pipeline does beyond format and size, in a few words. */
export function pipelineExtras(p) {
  return [
    p.max_bytes ? `max ${formatBytes(p.max_bytes)}` : null,
    p.format === "tiff" && p.tiff_compression ? `${String(p.tiff_compression).toUpperCase()} compressed` : null,
    p.trim !== null && p.trim !== undefined ? `trim ${p.trim}` : null,
    p.sharpen ? `sharpen ${p.sharpen}%` : null,
    p.dpi ? `${p.dpi} dpi` : null,
    p.embed_icc ? "sRGB tagged" : null,
    p.filename ? `names ${p.filename}` : null,
  ].filter(Boolean);
}

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
    const quality = p.format === "png" ? `compression ${p.compression}` : p.format === "tiff" ? "lossless" : `quality ${p.quality}`;
    const options = [p.keep_metadata ? "keeps metadata" : null, p.upscale ? "upscales" : null, ...pipelineExtras(p)].filter(Boolean);
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
  clearFieldErrors();
}

function clearFieldErrors() {
  $("#pipeline-form-error").textContent = "";
  for (const selector of Object.values(CONTROLS)) {
    const control = $(selector);
    control.removeAttribute("aria-invalid");
    const note = $(`${selector}-error`);
    if (note) {
      note.remove();
      control.setAttribute("aria-describedby", (control.getAttribute("aria-describedby") || "").replace(note.id, "").trim());
      if (!control.getAttribute("aria-describedby")) control.removeAttribute("aria-describedby");
    }
  }
}

/** The API's every problem: a summary above the buttons, and each message beside its field. */
function showFieldErrors(err) {
  const errors = err instanceof ApiError && Array.isArray(err.body?.Errors) ? err.body.Errors : [];
  const summary = $("#pipeline-form-error");
  if (errors.length < 2) setFormError(summary, err);
  else {
    summary.replaceChildren(`Fix ${errors.length} problems:`, h("ul", {}, errors.map((e) => h("li", {}, e.message))));
  }
  let first = null;
  for (const { field, message } of errors) {
    const selector = CONTROLS[field];
    if (!selector) continue;
    const control = $(selector);
    const id = `${selector.slice(1)}-error`;
    control.setAttribute("aria-invalid", "true");
    if (!$(`#${id}`)) {
      const note = h("p", { class: "field-error", id }, message);
      (control.closest(".field") || control.closest(".check") || control.parentElement).append(note);
      control.setAttribute("aria-describedby", `${control.getAttribute("aria-describedby") || ""} ${id}`.trim());
    }
    first = first || control;
  }
  first?.focus();
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
  $("#pl-embed-icc").checked = Boolean(p.embed_icc);
  $("#pl-tiff-compression").value = p.tiff_compression || "deflate";
  $("#pl-trim").value = p.trim ?? "";
  $("#pl-dpi").value = p.dpi ?? "";
  $("#pl-sharpen").value = p.sharpen ?? 0;
  $("#pl-max-bytes").value = p.max_bytes ?? "";
  $("#pl-filename").value = p.filename ?? "";
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
    tiff_compression: $("#pl-tiff-compression").value,
    embed_icc: $("#pl-embed-icc").checked,
    trim: num("#pl-trim"),
    dpi: num("#pl-dpi"),
    sharpen: num("#pl-sharpen"),
    max_bytes: num("#pl-max-bytes"),
    filename: $("#pl-filename").value.trim() || undefined,
  };
  for (const key of Object.keys(spec)) if (spec[key] === undefined) delete spec[key];
  return spec;
}

async function savePipeline(event) {
  event.preventDefault();
  const id = $("#pl-id").value;
  const button = $("#pipeline-save");
  clearFieldErrors();
  button.disabled = true;
  try {
    const saved = id ? await api.replacePipeline(id, formSpec()) : await api.createPipeline(formSpec());
    toast(id ? `Saved pipeline “${saved.name}”.` : `Created pipeline “${saved.name}”.`, { kind: "success" });
    resetForm();
    await loadPipelines();
  } catch (err) {
    showFieldErrors(err);
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
