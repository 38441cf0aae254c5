// The larger view of one file: every pipeline's output as the service stored it (through
// GET /jobs/{id}/download?redirect=false), with its format, dimensions and size and a download
// link each, or the file's error. A modal <dialog>: focus stays inside, Escape closes it and
// focus returns to the tile that opened it. Previous/Next (and the arrow keys) walk the batch.

import { ApiError, api } from "./api.js";
import { badge, h } from "./dom.js";
import { errorLabel, formatBytes } from "./format.js";

let dialog = null;
let state = null; // {jobs, index, pipelines, onClose, token}

function ensureDialog() {
  if (dialog) return dialog;
  dialog = h("dialog", { id: "viewer", class: "viewer", "aria-labelledby": "viewer-title" });
  dialog.addEventListener("close", () => {
    const done = state?.onClose;
    const job = state?.jobs[state.index];
    state = null;
    dialog.replaceChildren();
    if (done) done(job);
  });
  dialog.addEventListener("keydown", (event) => {
    if (!state || event.target.closest("input, textarea, select")) return;
    if (event.key === "ArrowRight") move(1, event);
    if (event.key === "ArrowLeft") move(-1, event);
  });
  document.body.append(dialog);
  return dialog;
}

function move(step, event) {
  const next = state.index + step;
  if (next < 0 || next >= state.jobs.length) return;
  event?.preventDefault();
  state.index = next;
  render();
}

/**
 * Open the view on `jobs[index]`; `pipelines` are the batch's ({id, name}); `onClose(job)` runs
 * when it closes with the job shown last (to put focus back on its tile).
 */
export function openViewer({ jobs, index, pipelines, onClose }) {
  ensureDialog();
  state = { jobs, index, pipelines, onClose, token: 0 };
  render();
  if (!dialog.open) dialog.showModal();
  dialog.querySelector(".viewer-close")?.focus();
}

function render() {
  const job = state.jobs[state.index];
  const token = ++state.token;
  const names = new Map(state.pipelines.map((p) => [p.id, p.name]));
  const outputs = job.status === "completed" ? job.outputs || [] : [];
  const figures = outputs.map((o) => outputFigure(job, o, names.get(o.pipeline_id) || "output"));
  const body = [];
  if (job.error) {
    body.push(h("div", { class: "notice notice-error viewer-error", role: "note" },
      h("strong", {}, errorLabel(job.error.code)), " ", h("code", {}, job.error.code), h("p", {}, job.error.message)));
  }
  if (figures.length) body.push(h("div", { class: "viewer-outputs" }, figures.map((f) => f.el)));
  else if (!job.error) body.push(h("p", { class: "muted" }, job.status === "completed" ? "This file has no outputs." : "Outputs appear here once the file is processed."));

  const position = `${state.index + 1} of ${state.jobs.length}`;
  dialog.replaceChildren(
    h("div", { class: "viewer-head" },
      h("div", {},
        h("h2", { id: "viewer-title", class: "viewer-title" }, job.file_name),
        h("p", { class: "muted small" }, badge(job.status), " ", `Input ${formatBytes(job.size)} · file ${position}`)),
      h("div", { class: "viewer-nav", role: "group", "aria-label": "Files" },
        h("button", { type: "button", class: "btn btn-small btn-secondary", "aria-label": "Previous file", disabled: state.index === 0, onclick: () => move(-1) }, "‹ Previous"),
        h("button", { type: "button", class: "btn btn-small btn-secondary", "aria-label": "Next file", disabled: state.index === state.jobs.length - 1, onclick: () => move(1) }, "Next ›"),
        h("button", { type: "button", class: "btn btn-small btn-quiet viewer-close", onclick: () => dialog.close() }, "Close"))),
    ...body,
  );
  const focused = document.activeElement;
  if (!dialog.contains(focused) || focused === document.body) dialog.querySelector(".viewer-close")?.focus();
  for (const figure of figures) figure.load(token);
}

function outputFigure(job, output, pipelineName) {
  const picture = h("div", { class: "viewer-picture", "aria-busy": "true" }, h("span", { class: "muted small" }, "Loading…"));
  const link = h("span", { class: "muted small" }, "Preparing the download…");
  const format = String(output.format || "").toUpperCase();
  const el = h("figure", { class: "viewer-output", dataset: { pipelineId: output.pipeline_id } },
    picture,
    h("figcaption", {},
      h("strong", {}, pipelineName), " ",
      h("span", { class: "output-format" }, format), " · ",
      h("span", { class: "output-dims" }, `${output.width}×${output.height}`), " · ",
      h("span", { class: "output-size" }, formatBytes(output.size)), " ",
      link));
  const load = async (token) => {
    let url;
    try {
      url = (await api.jobOutput(job.id, output.pipeline_id)).url;
    } catch (err) {
      if (!state || state.token !== token) return;
      picture.removeAttribute("aria-busy");
      picture.replaceChildren(h("p", { class: "form-error" }, `Could not load this output: ${err instanceof ApiError ? err.message : err}`));
      link.textContent = "";
      return;
    }
    if (!state || state.token !== token) return;
    const img = h("img", { alt: `${job.file_name}, ${pipelineName} output, ${format} ${output.width}×${output.height}`, src: url, width: output.width, height: output.height });
    img.addEventListener("load", () => picture.removeAttribute("aria-busy"));
    img.addEventListener("error", () => {
      // TIFF (and anything else the browser cannot draw): show the preview, say why
      picture.removeAttribute("aria-busy");
      const note = h("p", { class: "muted small" }, `This browser cannot display ${format}; the preview is shown instead.`);
      picture.replaceChildren(...(job.preview ? [h("img", { alt: `${job.file_name}, preview`, src: job.preview.url, width: job.preview.width, height: job.preview.height })] : []), note);
    }, { once: true });
    picture.replaceChildren(img);
    // The URL answers with Content-Disposition: attachment, so following it downloads the file.
    link.replaceWith(h("a", { class: "btn btn-small btn-secondary viewer-download", href: url, rel: "noopener", dataset: { action: "download-output" } },
      `Download ${format}`, h("span", { class: "visually-hidden" }, ` of ${job.file_name} (${pipelineName})`)));
  };
  return { el, load };
}
