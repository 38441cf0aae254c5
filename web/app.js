// imgbatch web UI: sign in, submit batches (presigned S3 uploads), follow them, act on them,
// and manage pipelines. Plain ES modules, no build step, no third-party code.

import { api, ApiError, auth, onUnauthorized, request } from "./api.js";
import { autoDescription, customerPrefix, directoryName, prefixCounts, utcDate } from "./naming.js";
import { UploadSession } from "./uploader.js";

const POLL_MS = 2000;
const PAGE_SIZE = 25;
const FINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
const STATUS_ORDER = ["queued", "processing", "completed", "completed_with_errors", "failed", "cancelled"];
const MAX_FILE_ROWS = 300; // selected files listed one by one; past this, a summary

// -- tiny DOM helpers ------------------------------------------------------------
const $ = (selector, root = document) => root.querySelector(selector);

/** h("button", {class: "btn", onclick: fn}, "Label") — text children are never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "style") el.style.cssText = value; // CSSOM: the CSP forbids style attributes
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
function timeEl(iso) {
  if (!iso) return h("span", { class: "muted" }, "–");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  return h("time", { datetime: iso, title: iso }, dateFormat.format(date));
}

const statusLabel = (status) => String(status || "").replaceAll("_", " ");
const plural = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function badge(status) {
  return h("span", { class: `badge badge-${status}`, dataset: { status } }, statusLabel(status));
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// -- toasts (aria-live) ------------------------------------------------------------
function toast(message, { kind = "info", timeout = 6000, action } = {}) {
  const region = kind === "error" ? $("#toast-alert") : $("#toast-status");
  const close = () => item.remove();
  const item = h(
    "div",
    { class: `toast toast-${kind}` },
    h("p", {}, message),
    action ? h("button", { type: "button", class: "btn btn-small btn-secondary", onclick: () => { close(); action.run(); } }, action.label) : null,
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss notification", onclick: close }, "×"),
  );
  region.append(item);
  if (timeout) setTimeout(close, kind === "error" ? timeout * 2 : timeout);
  return item;
}

function showError(err, context) {
  if (err && err.name === "AbortError") return;
  const message = err instanceof ApiError ? err.message : String(err?.message || err);
  toast(context ? `${context}: ${message}` : message, { kind: "error" });
}

function setFormError(el, err) {
  el.textContent = "";
  if (!err) return;
  el.append(err instanceof ApiError ? err.message : String(err.message || err));
}

// -- confirmation dialog -------------------------------------------------------------
function confirmDialog({ title, body, confirmLabel = "Delete" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-body", dialog).textContent = body;
  $("#confirm-ok", dialog).textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "confirm");
        if (opener && opener.isConnected) opener.focus();
      },
      { once: true },
    );
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("#confirm-cancel", dialog).focus();
  });
}

// -- app state -------------------------------------------------------------------------
const state = {
  pipelines: [],
  batches: [], // the rows shown, in order
  byId: new Map(), // id -> {batch, tbody, expanded, jobs, jobsCursor, loadingJobs}
  nextCursor: null,
  loadedParams: null, // the query the rows shown came from
  pageCursors: [], // the cursor each loaded page was fetched with (null: the first page)
  listToken: 0, // increments on every reload, so stale answers are dropped
  files: [], // File objects chosen for the next batch
  sessions: new Map(), // batch id -> UploadSession
  pollTimer: null,
  polling: false,
  downloads: new Set(),
};

// -- views, routing, sign in -------------------------------------------------------
function currentView() {
  const hash = location.hash.replace("#", "");
  return hash === "pipelines" ? "pipelines" : "batches";
}

function showView() {
  const signedIn = Boolean(auth.current());
  for (const el of document.querySelectorAll("[data-signed-in]")) el.hidden = !signedIn;
  $("#view-signin").hidden = signedIn;
  const view = currentView();
  $("#view-batches").hidden = !signedIn || view !== "batches";
  $("#view-pipelines").hidden = !signedIn || view !== "pipelines";
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  document.title = signedIn ? `${view === "pipelines" ? "Pipelines" : "Batches"} · imgbatch` : "Sign in · imgbatch";
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#signin-token");
  const error = $("#signin-error");
  const token = input.value.trim();
  error.textContent = "";
  if (!token) {
    error.textContent = "Enter your API token.";
    input.focus();
    return;
  }
  const button = $("#signin-submit");
  button.disabled = true;
  button.textContent = "Checking…";
  try {
    await request("GET", "batches/stats", { token });
    auth.token = token;
    input.value = "";
    await enterApp();
    $("#main").focus();
  } catch (err) {
    error.textContent =
      err.status === 401 ? `That token was not accepted: ${err.message}` : `Could not sign in: ${err.message}`;
    input.focus();
    input.select();
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

function signOut(message) {
  for (const session of state.sessions.values()) session.cancel();
  state.sessions.clear();
  auth.token = "";
  stopPolling();
  state.batches = [];
  state.byId.clear();
  for (const body of document.querySelectorAll("#batch-table tbody")) body.remove();
  $("#upload-sessions").textContent = "";
  showView();
  $("#signin-error").textContent = message || "";
  $("#signin-token").focus();
}

async function enterApp() {
  showView();
  await Promise.all([loadPipelines(), reloadBatches(), refreshStats(), showOwner()]);
}

async function showOwner() {
  try {
    const { data } = await request("GET", "me");
    $("#session-label").textContent = `Signed in as ${data.owner}`;
  } catch {
    $("#session-label").textContent = "Signed in";
  }
}

// -- stats ---------------------------------------------------------------------------
let statsSeq = 0;
async function refreshStats() {
  const seq = ++statsSeq;
  let stats;
  try {
    stats = await api.stats();
  } catch (err) {
    if (err.status !== 401 && seq === statsSeq) showError(err, "Could not load statistics");
    return;
  }
  if (seq !== statsSeq) return; // a newer answer is on its way
  $("#stat-total").textContent = (stats.total_batches ?? 0).toLocaleString();
  $("#stat-files").textContent = (stats.total_files_all_time ?? 0).toLocaleString();
  $("#stat-avg").textContent = Number(stats.avg_files_per_batch ?? 0).toLocaleString(undefined, { maximumFractionDigits: 1 });
  $("#stat-max").textContent = (stats.max_files_in_batch ?? 0).toLocaleString();
  const list = $("#stat-statuses");
  list.textContent = "";
  const active = $("#filter-status").value;
  for (const status of STATUS_ORDER) {
    const count = stats[status] ?? 0;
    list.append(
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "chip",
            "aria-pressed": String(active === status),
            dataset: { status },
            title: `Show only ${statusLabel(status)} batches`,
            onclick: () => {
              const select = $("#filter-status");
              select.value = select.value === status ? "" : status;
              reloadBatches();
              refreshStats();
            },
          },
          h("span", { class: `dot dot-${status}`, "aria-hidden": "true" }),
          h("span", { class: "chip-label" }, statusLabel(status)),
          h("span", { class: "chip-count" }, count.toLocaleString()),
        ),
      ),
    );
  }
}

// -- pipelines -------------------------------------------------------------------------
async function loadPipelines() {
  try {
    state.pipelines = await api.pipelines();
    $("#pipelines-error").textContent = "";
  } catch (err) {
    if (err.status !== 401) setFormError($("#pipelines-error"), err);
    return;
  }
  state.pipelines.sort((a, b) => a.name.localeCompare(b.name));
  renderPipelineChoices();
  renderPipelineTable();
}

function renderPipelineChoices() {
  const box = $("#pipeline-choices");
  const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  box.textContent = "";
  if (!state.pipelines.length) {
    box.append(
      h("p", { class: "muted small" }, "No pipelines yet. ", h("a", { href: "#pipelines" }, "Create a pipeline"), " first."),
    );
    return;
  }
  for (const p of state.pipelines) {
    const id = `choice-${p.id}`;
    const selected = checked.has(p.id) || (state.pipelines.length === 1 && !checked.size);
    box.append(
      h(
        "label",
        { class: "check", for: id },
        h("input", { type: "checkbox", id, name: "pipeline", value: p.id, checked: selected }),
        h("span", {}, p.name, " ", h("span", { class: "muted" }, `· ${describePipeline(p)}`)),
      ),
    );
  }
}

function describePipeline(p) {
  const size = p.width || p.height ? `${p.width || "auto"}×${p.height || "auto"}` : "original size";
  return `${String(p.format).toUpperCase()}, ${size}`;
}

function renderPipelineTable() {
  const rows = $("#pipeline-rows");
  rows.textContent = "";
  $("#pipelines-empty").hidden = state.pipelines.length > 0;
  $("#pipeline-table").hidden = state.pipelines.length === 0;
  for (const p of state.pipelines) {
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

function resetPipelineForm() {
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
  resetPipelineForm();
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
function pipelineSpec() {
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
    const saved = id ? await api.replacePipeline(id, pipelineSpec()) : await api.createPipeline(pipelineSpec());
    toast(id ? `Saved pipeline “${saved.name}”.` : `Created pipeline “${saved.name}”.`, { kind: "success" });
    resetPipelineForm();
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
    if ($("#pl-id").value === p.id) resetPipelineForm();
    await loadPipelines();
  } catch (err) {
    setFormError($("#pipelines-error"), err);
  }
}

// -- choosing files and the naming preview ------------------------------------------
function addFiles(fileList) {
  const seen = new Map(state.files.map((f) => [f.name.normalize("NFC").toLowerCase(), f]));
  let skipped = 0;
  for (const file of fileList) {
    const key = file.name.normalize("NFC").toLowerCase();
    if (seen.has(key)) {
      skipped += 1;
      continue;
    }
    seen.set(key, file);
    state.files.push(file);
  }
  if (skipped) toast(`${plural(skipped, "file")} skipped: a file with the same name is already chosen.`);
  $("#submit-error").textContent = "";
  renderFiles();
}

function renderFiles() {
  const list = $("#file-list");
  const summary = $("#file-summary");
  list.textContent = "";
  const files = state.files;
  const total = files.reduce((sum, f) => sum + f.size, 0);
  summary.textContent = files.length ? `${plural(files.length, "file")} chosen · ${formatBytes(total)}` : "";
  for (const [index, file] of files.slice(0, MAX_FILE_ROWS).entries()) {
    list.append(
      h(
        "li",
        {},
        h("span", { class: "file-name" }, file.name),
        h("span", { class: "muted small" }, formatBytes(file.size)),
        h(
          "button",
          {
            type: "button",
            class: "icon-button",
            "aria-label": `Remove ${file.name}`,
            onclick: () => {
              state.files.splice(index, 1);
              renderFiles();
              const next = $("#file-list button") || $("#file-input");
              next.focus();
            },
          },
          "×",
        ),
      ),
    );
  }
  if (files.length > MAX_FILE_ROWS) {
    list.append(h("li", { class: "muted small" }, `…and ${plural(files.length - MAX_FILE_ROWS, "more file")}`));
  }
  $("#clear-files").hidden = files.length === 0;
  updatePreview();
}

function updatePreview() {
  const names = state.files.map((f) => f.name);
  const override = $("#prefix-input").value.trim();
  const parsed = names.length ? customerPrefix(names) : null;
  const prefix = override || parsed;
  const date = utcDate();
  const prefixOut = $("#preview-prefix");
  prefixOut.textContent = "";
  if (!prefix) {
    prefixOut.textContent = "–";
  } else if (override) {
    prefixOut.append(h("strong", {}, override), h("span", { class: "muted" }, " (your override)"));
  } else {
    const counts = prefixCounts(names);
    prefixOut.append(h("strong", {}, parsed));
    if (counts.length > 1) {
      const detail = counts.slice(0, 4).map(([p, n]) => `${p} ×${n}`).join(", ");
      prefixOut.append(h("span", { class: "muted" }, ` (most common of ${detail}${counts.length > 4 ? ", …" : ""})`));
    } else {
      prefixOut.append(h("span", { class: "muted" }, " (parsed from the file names)"));
    }
  }
  $("#preview-directory").textContent = prefix ? directoryName(prefix, date) : "–";
  const description = $("#description-input").value.trim();
  const auto = names.length ? autoDescription(names) : "";
  $("#description-input").placeholder = auto ? `Default: ${auto}` : "Default: depends on the files";
  const descOut = $("#preview-description");
  descOut.textContent = "";
  if (description) descOut.append(description);
  else if (auto) descOut.append(auto, h("span", { class: "muted" }, " (default)"));
  else descOut.append("–");
  $("#prefix-input").placeholder = parsed ? `Parsed: ${parsed}` : "Parsed from file names";
}

function setupDropzone() {
  const zone = $("#dropzone");
  const input = $("#file-input");
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  const stop = (e) => {
    e.preventDefault();
    e.stopPropagation();
  };
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => {
      stop(e);
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "dragend"]) {
    zone.addEventListener(type, (e) => {
      if (e.target === zone) zone.classList.remove("dragging");
    });
  }
  zone.addEventListener("drop", (e) => {
    stop(e);
    zone.classList.remove("dragging");
    const files = [...(e.dataTransfer?.files || [])].filter((f) => f.size > 0 || f.type);
    if (files.length) addFiles(files);
  });
  // Dropping a file anywhere else would navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// -- submitting a batch and uploading ------------------------------------------------
async function submitBatch(event) {
  event.preventDefault();
  const error = $("#submit-error");
  error.textContent = "";
  const pipelineIds = [...document.querySelectorAll("#pipeline-choices input:checked")].map((i) => i.value);
  if (!state.files.length) {
    error.textContent = "Choose at least one image to upload.";
    $("#file-input").focus();
    return;
  }
  if (!pipelineIds.length) {
    error.textContent = state.pipelines.length
      ? "Choose at least one pipeline."
      : "Create a pipeline first (Pipelines tab), then choose it here.";
    ($("#pipeline-choices input") || $("#pipeline-choices a"))?.focus();
    return;
  }
  const payload = {
    pipeline_ids: pipelineIds,
    files: state.files.map((f) => ({ name: f.name, size: f.size, content_type: f.type || "" })),
  };
  const prefix = $("#prefix-input").value.trim();
  const description = $("#description-input").value.trim();
  if (prefix) payload.customer_prefix = prefix;
  if (description) payload.description = description;

  const button = $("#submit-button");
  button.disabled = true;
  button.textContent = "Creating batch…";
  let created;
  try {
    created = await api.createBatch(payload);
  } catch (err) {
    setFormError(error, err);
    button.disabled = false;
    button.textContent = "Upload batch";
    return;
  }
  button.disabled = false;
  button.textContent = "Upload batch";
  const files = state.files;
  state.files = [];
  $("#prefix-input").value = "";
  $("#description-input").value = "";
  renderFiles();

  const session = new UploadSession(created.batch, files);
  state.sessions.set(created.batch.id, session);
  renderSession(session);
  insertBatch(created.batch);
  refreshStats();
  schedulePoll(0);
  session.start(created.uploads || [], created.uploads_next_cursor).catch((err) => showError(err, "Upload"));
}

function renderSession(session) {
  const { batch } = session;
  const listId = `upload-files-${batch.id}`;
  const bar = h("div", { class: "bar-fill" });
  const overall = h(
    "div",
    { class: "bar", role: "progressbar", "aria-label": `Upload progress of ${batch.base_directory_name}`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" },
    bar,
  );
  const counts = h("p", { class: "upload-counts small" });
  const live = h("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
  const list = h("ul", { class: "upload-files", id: listId, "aria-label": "Files being uploaded" });
  const stopButton = h("button", { type: "button", class: "btn btn-small btn-secondary", onclick: () => session.cancel() }, "Stop uploads");
  const retryButton = h(
    "button",
    { type: "button", class: "btn btn-small btn-secondary", hidden: true, onclick: () => { retryButton.hidden = true; session.retryFailed(); } },
    "Retry failed uploads",
  );
  const dismissButton = h(
    "button",
    { type: "button", class: "btn btn-small btn-quiet", hidden: true, onclick: () => { panel.remove(); state.sessions.delete(batch.id); } },
    "Dismiss",
  );
  const panel = h(
    "section",
    { class: "upload-session", "aria-label": `Uploads for ${batch.base_directory_name}`, dataset: { batchId: batch.id } },
    h(
      "div",
      { class: "upload-head" },
      h("div", {}, h("h3", {}, "Uploading ", h("span", { class: "mono" }, batch.base_directory_name)), h("p", { class: "muted small" }, batch.description)),
      h("div", { class: "upload-actions" }, stopButton, retryButton, dismissButton),
    ),
    overall,
    counts,
    live,
    list,
  );
  $("#upload-sessions").prepend(panel);

  const rows = new Map();
  let lastAnnounced = "";
  let frame = 0;
  const render = () => {
    frame = 0;
    const t = session.totals;
    bar.style.width = `${t.percent}%`;
    overall.setAttribute("aria-valuenow", String(t.percent));
    overall.setAttribute("aria-valuetext", `${t.percent}%, ${t.done} of ${t.files} files uploaded`);
    const parts = [`${t.done.toLocaleString()} of ${plural(t.files, "file")} uploaded`, `${formatBytes(t.loaded)} of ${formatBytes(t.bytes)}`, `${t.percent}%`];
    if (t.failed) parts.push(`${t.failed} failed`);
    if (t.cancelled) parts.push(`${t.cancelled} stopped`);
    counts.textContent = parts.join(" · ");
    if (session.pageError) counts.append(h("span", { class: "error-text" }, ` · ${session.pageError}`));
    const settled = t.done + t.failed + t.cancelled === t.files;
    const announce = settled
      ? `Uploads finished: ${t.done} uploaded${t.failed ? `, ${t.failed} failed` : ""}${t.cancelled ? `, ${t.cancelled} stopped` : ""}.`
      : `${t.done} of ${t.files} files uploaded.`;
    if (announce !== lastAnnounced && (settled || t.done % Math.max(1, Math.ceil(t.files / 10)) === 0)) {
      live.textContent = announce;
      lastAnnounced = announce;
    }
    panel.classList.toggle("is-done", session.finished);
    $("h3", panel).firstChild.textContent = session.finished ? (t.failed ? "Uploads finished with errors: " : t.cancelled ? "Uploads stopped: " : "Uploaded ") : "Uploading ";
    stopButton.hidden = session.finished;
    retryButton.hidden = !(session.finished && t.failed && session.items.some((i) => i.status === "failed" && i.upload));
    dismissButton.hidden = !session.finished;
    // One row per file for ordinary batches; for huge ones only those in flight or failed.
    const showAll = session.items.length <= MAX_FILE_ROWS;
    for (const item of session.items) {
      const visible = showAll || item.status === "uploading" || item.status === "failed";
      let row = rows.get(item);
      if (!visible) {
        if (row) {
          row.el.remove();
          rows.delete(item);
        }
        continue;
      }
      if (!row) {
        const progress = h("progress", { max: String(item.size || 1), value: "0", "aria-label": `Upload of ${item.name}` });
        const status = h("span", { class: "upload-status small" });
        const error = h("p", { class: "upload-error small", hidden: true });
        const el = h("li", { class: "upload-file", dataset: { file: item.name } }, h("span", { class: "file-name" }, item.name), progress, status, error);
        row = { el, progress, status, error };
        rows.set(item, row);
        list.append(el);
      }
      row.el.dataset.status = item.status;
      row.progress.value = item.status === "done" ? item.size || 1 : item.loaded;
      const pct = item.size ? Math.floor(((item.status === "done" ? item.size : item.loaded) * 100) / item.size) : 0;
      row.status.textContent = {
        waiting: "Waiting for upload URL",
        queued: "Queued",
        uploading: `${pct}%`,
        done: "Uploaded",
        failed: "Failed",
        cancelled: "Stopped",
      }[item.status];
      row.error.hidden = !item.error || item.status === "done";
      row.error.textContent = item.error;
    }
  };
  session.addEventListener("change", () => {
    if (!frame) frame = requestAnimationFrame(render);
  });
  session.addEventListener("done", () => {
    render();
    const t = session.totals;
    if (t.failed) toast(`${plural(t.failed, "upload")} of ${batch.base_directory_name} failed; see the file list.`, { kind: "error" });
    else if (!t.cancelled) toast(`All ${plural(t.files, "file")} of ${batch.base_directory_name} uploaded.`, { kind: "success" });
    schedulePoll(0);
  });
  render();
}

// -- batch list ------------------------------------------------------------------------
function listParams() {
  return {
    status: $("#filter-status").value,
    customer_prefix: $("#filter-prefix").value.trim(),
    search: $("#filter-search").value.trim(),
    sort_by: $("#sort-by").value,
    sort_order: $("#sort-order").value,
    limit: PAGE_SIZE,
  };
}

function filtersActive() {
  const p = listParams();
  return Boolean(p.status || p.customer_prefix || p.search);
}

/** Mark the list as about to change (a reload is scheduled or running). */
function listBusy(busy) {
  const section = $("#list-section");
  if (busy) section.setAttribute("aria-busy", "true");
  else section.removeAttribute("aria-busy");
}

async function reloadBatches() {
  const token = ++state.listToken;
  $("#list-error").textContent = "";
  $("#list-status").textContent = "Loading batches…";
  listBusy(true);
  const params = listParams();
  let page;
  try {
    page = await api.listBatches(params);
  } catch (err) {
    if (token !== state.listToken) return;
    listBusy(false);
    $("#list-status").textContent = "";
    if (err.status !== 401) setFormError($("#list-error"), err);
    return;
  }
  if (token !== state.listToken) return;
  const expanded = new Set([...state.byId.values()].filter((r) => r.expanded).map((r) => r.batch.id));
  for (const body of document.querySelectorAll("#batch-table tbody")) body.remove();
  state.batches = [];
  state.byId.clear();
  state.loadedParams = params;
  state.pageCursors = [null];
  appendBatches(page.batches, 0, expanded);
  state.nextCursor = page.next_cursor;
  updateListFooter();
  listBusy(false);
  schedulePoll();
}

async function loadMore() {
  if (!state.nextCursor) return;
  const token = state.listToken;
  const button = $("#load-more");
  button.disabled = true;
  button.textContent = "Loading…";
  listBusy(true);
  try {
    const cursor = state.nextCursor;
    const page = await api.listBatches({ ...state.loadedParams, cursor });
    if (token !== state.listToken) return;
    const firstNew = page.batches.find((b) => !state.byId.has(b.id));
    state.pageCursors.push(cursor);
    appendBatches(page.batches, state.pageCursors.length - 1);
    state.nextCursor = page.next_cursor;
    updateListFooter();
    if (firstNew) $(".toggle", state.byId.get(firstNew.id).tbody).focus();
    schedulePoll();
  } catch (err) {
    setFormError($("#list-error"), err);
  } finally {
    button.disabled = false;
    button.textContent = "Load more";
    if (token === state.listToken) listBusy(false);
  }
}

function updateListFooter() {
  const n = state.batches.length;
  const empty = $("#list-empty");
  empty.hidden = n > 0;
  $("#batch-table").hidden = n === 0;
  if (!n) {
    empty.textContent = state.nextCursor
      ? "No matches on this page of results yet. Load more to keep searching."
      : filtersActive()
        ? "No batches match these filters."
        : "No batches yet. Choose images above to submit your first batch.";
  }
  $("#load-more").hidden = !state.nextCursor;
  $("#list-status").textContent = n
    ? `Showing ${plural(n, "batch", "batches")}${state.nextCursor ? " (more available)" : ""}`
    : "";
}

function appendBatches(batches, pageIndex, expanded = new Set()) {
  const table = $("#batch-table");
  for (const batch of batches) {
    if (state.byId.has(batch.id)) continue;
    const row = createBatchRow(batch);
    row.page = pageIndex;
    state.batches.push(batch);
    state.byId.set(batch.id, row);
    table.append(row.tbody);
    if (expanded.has(batch.id)) toggleBatch(row, true);
  }
}

/** A batch just created here goes on top (unless the filters would hide it). */
function insertBatch(batch) {
  const p = listParams();
  if ((p.status && p.status !== batch.status) || (p.customer_prefix && p.customer_prefix !== batch.customer_prefix) || p.search) {
    return;
  }
  if (state.byId.has(batch.id)) return;
  const row = createBatchRow(batch);
  row.page = 0;
  state.batches.unshift(batch);
  state.byId.set(batch.id, row);
  const table = $("#batch-table");
  const first = table.querySelector("tbody");
  if (first && p.sort_by === "created_at" && p.sort_order === "desc") table.insertBefore(row.tbody, first);
  else if (!first) table.append(row.tbody);
  else table.insertBefore(row.tbody, first);
  updateListFooter();
}

function progressBar(batch) {
  const p = batch.progress || {};
  const total = batch.total_files || 1;
  const seg = (n, cls) => h("span", { class: `seg ${cls}`, style: `width:${((n || 0) * 100) / total}%` });
  const uploadedOnly = Math.max(0, (p.uploaded || 0) - (p.succeeded || 0) - (p.failed || 0));
  return h(
    "div",
    {
      class: "bar bar-stacked",
      role: "progressbar",
      "aria-label": `Progress of ${batch.base_directory_name}`,
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(p.percent ?? 0),
      "aria-valuetext": `${p.percent ?? 0}% done: ${progressText(batch)}`,
    },
    seg(p.succeeded, "seg-ok"),
    seg(p.failed, "seg-failed"),
    seg(p.cancelled, "seg-cancelled"),
    seg(uploadedOnly, "seg-uploaded"),
  );
}

function progressText(batch) {
  const p = batch.progress || {};
  const parts = [`${(p.uploaded || 0).toLocaleString()} uploaded`, `${(p.succeeded || 0).toLocaleString()} succeeded`];
  if (p.failed) parts.push(`${p.failed.toLocaleString()} failed`);
  if (p.cancelled) parts.push(`${p.cancelled.toLocaleString()} cancelled`);
  return parts.join(" · ");
}

function createBatchRow(batch) {
  const detailId = `batch-detail-${batch.id}`;
  const toggle = h(
    "button",
    { type: "button", class: "toggle", "aria-expanded": "false", "aria-controls": detailId },
    h("span", { class: "chevron", "aria-hidden": "true" }),
    h("span", { class: "dir mono" }, batch.base_directory_name),
  );
  const desc = h("span", { class: "desc muted small" });
  const filesCell = h("td", { class: "cell-files", "data-label": "Files" });
  const statusCell = h("td", { class: "cell-status", "data-label": "Status" });
  const progressCell = h("td", { class: "cell-progress", "data-label": "Progress" });
  const createdCell = h("td", { class: "cell-created", "data-label": "Created" });
  const mainRow = h("tr", { class: "batch-row" }, h("th", { scope: "row", class: "cell-batch" }, toggle, desc), filesCell, statusCell, progressCell, createdCell);
  const detail = h("div", { class: "detail" });
  const detailRow = h("tr", { class: "detail-row", id: detailId, hidden: true }, h("td", { colspan: "5" }, detail));
  const tbody = h("tbody", { class: "batch", dataset: { batchId: batch.id } }, mainRow, detailRow);
  const row = { batch, tbody, toggle, desc, filesCell, statusCell, progressCell, createdCell, detailRow, detail, expanded: false, jobs: null, jobsCursor: null };
  toggle.addEventListener("click", () => toggleBatch(row));
  updateBatchRow(row, batch);
  return row;
}

function updateBatchRow(row, batch) {
  const previous = row.batch;
  row.batch = batch;
  const index = state.batches.findIndex((b) => b.id === batch.id);
  if (index >= 0) state.batches[index] = batch;
  row.tbody.dataset.status = batch.status;
  row.desc.textContent = batch.description || "";
  row.filesCell.textContent = plural(batch.total_files, "file");
  row.statusCell.replaceChildren(badge(batch.status));
  row.progressCell.replaceChildren(progressBar(batch), h("span", { class: "counts small muted" }, progressText(batch)));
  row.createdCell.replaceChildren(timeEl(batch.created_at));
  if (row.expanded) renderDetail(row);
  if (previous && previous.status !== batch.status && FINAL.has(batch.status)) {
    toast(`${batch.base_directory_name} is ${statusLabel(batch.status)}.`, { kind: batch.status === "completed" ? "success" : "info" });
  }
}

async function toggleBatch(row, force) {
  const expand = force ?? !row.expanded;
  row.expanded = expand;
  row.toggle.setAttribute("aria-expanded", String(expand));
  row.tbody.classList.toggle("is-expanded", expand);
  row.detailRow.hidden = !expand;
  if (!expand) return;
  renderDetail(row);
  await loadJobs(row);
  schedulePoll();
}

async function loadJobs(row, { more = false } = {}) {
  if (row.loadingJobs) return;
  row.loadingJobs = true;
  try {
    const params = more ? { jobs_cursor: row.jobsCursor } : { jobs_limit: Math.min(1000, Math.max(100, row.jobs?.length || 0)) };
    const batch = await api.getBatch(row.batch.id, params);
    const { jobs, jobs_next_cursor: cursor } = batch;
    if (more) {
      const known = new Set((row.jobs || []).map((j) => j.id));
      row.jobs = [...(row.jobs || []), ...jobs.filter((j) => !known.has(j.id))];
    } else {
      row.jobs = jobs;
    }
    row.jobsCursor = cursor;
    row.jobsError = "";
    delete batch.jobs;
    delete batch.jobs_next_cursor;
    updateBatchRow(row, batch);
  } catch (err) {
    if (err.status === 404) {
      removeBatch(row.batch.id);
      toast(`${row.batch.base_directory_name} no longer exists.`);
      return;
    }
    row.jobsError = err.message;
    if (row.expanded) renderDetail(row);
  } finally {
    row.loadingJobs = false;
  }
}

function renderDetail(row) {
  const { batch } = row;
  const focused = row.detail.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const actions = h("div", { class: "detail-actions", role: "group", "aria-label": `Actions for ${batch.base_directory_name}` });
  const busy = state.downloads.has(batch.id);
  actions.append(
    // aria-disabled, not disabled: a focused button keeps focus while the ZIP is prepared.
    h("button", { type: "button", class: "btn btn-small btn-primary", dataset: { action: "download" }, "aria-busy": busy ? "true" : null, "aria-disabled": busy ? "true" : null, onclick: () => downloadZip(row.batch.id) }, busy ? "Preparing ZIP…" : "Download ZIP"),
  );
  if (!FINAL.has(batch.status)) {
    actions.append(h("button", { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "cancel" }, onclick: () => cancelBatch(row.batch.id) }, "Cancel"));
  }
  if ((batch.progress?.failed || 0) > 0) {
    actions.append(h("button", { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "retry" }, onclick: () => retryBatch(row.batch.id) }, "Retry failed"));
  }
  actions.append(h("button", { type: "button", class: "btn btn-small btn-danger-quiet", dataset: { action: "delete" }, onclick: () => deleteBatch(row.batch.id) }, "Delete"));

  const pipelines = (batch.pipelines || []).map((p) => p.name).join(", ") || (batch.pipeline_ids || []).join(", ");
  const meta = h(
    "dl",
    { class: "meta" },
    metaItem("Customer prefix", batch.customer_prefix),
    metaItem("Description", batch.description || "–"),
    metaItem("Pipelines", pipelines || "–"),
    metaItem("Total size", formatBytes(batch.total_size)),
    metaItem("Created", timeEl(batch.created_at)),
    metaItem("Started", timeEl(batch.started_at)),
    metaItem("Completed", timeEl(batch.completed_at)),
    !FINAL.has(batch.status) ? metaItem("Uploads accepted until", timeEl(batch.upload_expires_at)) : null,
  );

  const notice = row.notice ? h("div", { class: `notice notice-${row.notice.kind}`, role: row.notice.kind === "error" ? "alert" : "status" }, row.notice.message, row.notice.action || null) : null;

  let jobsBlock;
  if (row.jobsError) {
    jobsBlock = h("p", { class: "form-error" }, `Could not load the files: ${row.jobsError}`);
  } else if (!row.jobs) {
    jobsBlock = h("p", { class: "muted", role: "status" }, "Loading files…");
  } else {
    jobsBlock = jobsTable(row);
  }
  row.detail.replaceChildren(h("div", { class: "detail-top" }, meta, actions), notice || "", jobsBlock);
  if (focused) row.detail.querySelector(`[data-action="${focused}"]`)?.focus();
}

function metaItem(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function jobsTable(row) {
  const { batch } = row;
  const several = (batch.pipelines || []).length > 1;
  const names = new Map((batch.pipelines || []).map((p) => [p.id, p.name]));
  const body = h("tbody");
  for (const job of row.jobs) {
    const outputs = (job.outputs || []).map((o) =>
      h(
        "li",
        { class: "output" },
        several ? h("span", { class: "muted" }, `${names.get(o.pipeline_id) || "pipeline"}: `) : null,
        h("span", { class: "output-format" }, String(o.format || "").toUpperCase()),
        " ",
        h("span", { class: "output-dims" }, `${o.width}×${o.height}`),
        " · ",
        h("span", { class: "output-size" }, formatBytes(o.size)),
      ),
    );
    body.append(
      h(
        "tr",
        { class: "job", dataset: { jobId: job.id, status: job.status } },
        h("th", { scope: "row", class: "job-name", "data-label": "File" }, job.file_name),
        h("td", { "data-label": "Size" }, formatBytes(job.size)),
        h("td", { "data-label": "Status" }, badge(job.status)),
        h("td", { "data-label": "Output" }, outputs.length ? h("ul", { class: "outputs" }, outputs) : h("span", { class: "muted" }, "–")),
        h(
          "td",
          { "data-label": "Error", class: "job-error" },
          job.error ? [h("code", {}, job.error.code), " ", job.error.message] : h("span", { class: "muted" }, "–"),
        ),
      ),
    );
  }
  const more = row.jobsCursor
    ? h("button", { type: "button", class: "btn btn-small btn-secondary", onclick: () => loadJobs(row, { more: true }) }, "Load more files")
    : null;
  return h(
    "div",
    { class: "jobs-wrap" },
    h(
      "table",
      { class: "jobs" },
      h("caption", { class: "visually-hidden" }, `Files of ${batch.base_directory_name}`),
      h("thead", {}, h("tr", {}, ["File", "Size", "Status", "Output", "Error"].map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
    h("p", { class: "muted small" }, `Showing ${plural(row.jobs.length, "file")} of ${batch.total_files.toLocaleString()}.`, " ", more),
  );
}

function removeBatch(id) {
  const row = state.byId.get(id);
  if (!row) return;
  const wasFocused = row.tbody.contains(document.activeElement);
  const next = row.tbody.nextElementSibling || row.tbody.previousElementSibling;
  row.tbody.remove();
  state.byId.delete(id);
  state.batches = state.batches.filter((b) => b.id !== id);
  updateListFooter();
  if (wasFocused) {
    const target = next && next.tagName === "TBODY" ? $(".toggle", next) : $("#filter-search");
    target?.focus();
  }
}

// -- actions ---------------------------------------------------------------------------
function setNotice(id, notice) {
  const row = state.byId.get(id);
  if (!row) return;
  row.notice = notice;
  if (row.expanded) renderDetail(row);
}

async function cancelBatch(id) {
  const row = state.byId.get(id);
  try {
    const batch = await api.cancelBatch(id);
    state.sessions.get(id)?.cancel();
    toast(`Cancelled ${batch.base_directory_name}.`, { kind: "success" });
    if (row) {
      updateBatchRow(row, batch);
      await loadJobs(row);
    }
    refreshStats();
  } catch (err) {
    showError(err, `Could not cancel ${row?.batch.base_directory_name || "the batch"}`);
    if (row && err.status === 409) loadJobs(row); // the batch moved on meanwhile: show where it is now
  }
}

async function retryBatch(id) {
  const row = state.byId.get(id);
  try {
    const batch = await api.retryBatch(id);
    toast(`Retrying the failed files of ${batch.base_directory_name}.`, { kind: "success" });
    if (row) {
      updateBatchRow(row, batch);
      await loadJobs(row);
    }
    refreshStats();
    schedulePoll(0);
  } catch (err) {
    showError(err, `Could not retry ${row?.batch.base_directory_name || "the batch"}`);
    if (row && err.status === 409) loadJobs(row);
  }
}

async function deleteBatch(id) {
  const row = state.byId.get(id);
  const name = row?.batch.base_directory_name || "this batch";
  const ok = await confirmDialog({
    title: `Delete ${name}?`,
    body: "This removes the batch, its files and every upload, output and archive stored for it. It cannot be undone.",
    confirmLabel: "Delete batch",
  });
  if (!ok) return;
  try {
    await api.deleteBatch(id);
    state.sessions.get(id)?.cancel();
    removeBatch(id);
    toast(`Deleted ${name}.`, { kind: "success" });
    refreshStats();
  } catch (err) {
    showError(err, `Could not delete ${name}`);
  }
}

function triggerDownload(url, fileName) {
  const link = h("a", { href: url, download: fileName || "", hidden: true, rel: "noopener" });
  document.body.append(link);
  link.click();
  link.remove();
}

/** GET /batches/{id}/download?redirect=false: 200 ready, 202 building (poll), 409 nothing finished. */
async function downloadZip(id, partial = false) {
  if (state.downloads.has(id)) return;
  state.downloads.add(id);
  const name = () => state.byId.get(id)?.batch.base_directory_name || "batch";
  setNotice(id, { kind: "info", message: partial ? "Preparing a ZIP of the finished files…" : "Preparing the ZIP…" });
  try {
    const started = Date.now();
    for (;;) {
      if (!state.byId.has(id) || !auth.current()) return;
      const response = await api.download(id, partial);
      if (response.status === 202) {
        const header = Number(response.headers.get("Retry-After"));
        const wait = Math.min(30, Math.max(1, Number(response.data?.retry_after) || header || 2));
        if (Date.now() - started > 15 * 60 * 1000) throw new Error("The ZIP is taking too long to build; try again later.");
        setNotice(id, { kind: "info", message: `Building the ZIP of ${name()}… checking again in ${wait} s.` });
        await sleep(wait * 1000);
        continue;
      }
      const data = response.data || {};
      if (!data.url) throw new Error("The server answered without a download URL.");
      triggerDownload(data.url, data.file_name);
      setNotice(id, { kind: "success", message: `Downloading ${data.file_name || `${name()}.zip`}.` });
      toast(`Downloading ${data.file_name || `${name()}.zip`}.`, { kind: "success" });
      return;
    }
  } catch (err) {
    if (err.status === 409 && !partial) {
      const action = h(
        "button",
        { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "download-partial" }, onclick: () => { state.downloads.delete(id); downloadZip(id, true); } },
        "Download partial",
      );
      setNotice(id, { kind: "warning", message: `${err.message} `, action });
      toast(`${name()}: ${err.message}`, { kind: "error" });
    } else {
      setNotice(id, { kind: "error", message: `Download failed: ${err.message}` });
      showError(err, `Could not download ${name()}`);
    }
  } finally {
    state.downloads.delete(id);
    const row = state.byId.get(id);
    if (row?.expanded) renderDetail(row);
  }
}

// -- live refresh ----------------------------------------------------------------------
function activeRows() {
  return [...state.byId.values()].filter((row) => !FINAL.has(row.batch.status));
}

function schedulePoll(delay = POLL_MS) {
  if (state.pollTimer) clearTimeout(state.pollTimer);
  state.pollTimer = null;
  if (!auth.current()) return;
  if (!activeRows().length) return; // every visible batch is final: nothing to follow
  state.pollTimer = setTimeout(poll, delay);
}

function stopPolling() {
  if (state.pollTimer) clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

const signature = (b) => JSON.stringify([b.status, b.progress, b.updated_at, b.started_at, b.completed_at, b.description]);

/**
 * One tick of live refresh. Cheap on purpose: one list request per loaded page that shows a
 * batch still moving (not one request per batch), the files of expanded batches, and a direct
 * read only for batches a page no longer returns (e.g. their status left the status filter).
 */
async function poll() {
  state.pollTimer = null;
  if (state.polling) return;
  if (document.hidden) {
    schedulePoll();
    return;
  }
  state.polling = true;
  const token = state.listToken;
  try {
    const active = activeRows();
    const seen = new Set();
    const pages = [...new Set(active.filter((r) => !r.expanded).map((r) => r.page ?? 0))].slice(0, 5);
    await Promise.all(
      pages.map(async (index) => {
        const cursor = state.pageCursors[index] ?? null;
        let page;
        try {
          page = await api.listBatches({ ...state.loadedParams, cursor });
        } catch {
          return; // the next tick tries again; errors of user actions are reported elsewhere
        }
        if (token !== state.listToken) return;
        for (const batch of page.batches) {
          const row = state.byId.get(batch.id);
          if (!row) continue; // new elsewhere: shown on the next reload
          seen.add(batch.id);
          if (signature(batch) !== signature(row.batch)) updateBatchRow(row, batch);
        }
      }),
    );
    const rest = active.filter((r) => !r.expanded && !seen.has(r.batch.id)).slice(0, 10);
    await Promise.all([
      ...active.filter((r) => r.expanded).slice(0, 10).map((row) => loadJobs(row)),
      ...rest.map(async (row) => {
        try {
          const batch = await api.getBatch(row.batch.id, { jobs_limit: 1 });
          delete batch.jobs;
          delete batch.jobs_next_cursor;
          if (state.byId.get(batch.id) === row) updateBatchRow(row, batch);
        } catch (err) {
          if (err.status === 404) removeBatch(row.batch.id);
        }
      }),
    ]);
    await refreshStats();
  } finally {
    state.polling = false;
    schedulePoll();
  }
}

// -- wiring ----------------------------------------------------------------------------
function init() {
  onUnauthorized(() => signOut("Your API token was rejected. Sign in again."));
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => {
    showView();
    if (currentView() === "pipelines") loadPipelines();
  });

  setupDropzone();
  $("#submit-form").addEventListener("submit", submitBatch);
  $("#clear-files").addEventListener("click", () => {
    state.files = [];
    renderFiles();
    $("#file-input").focus();
  });
  $("#prefix-input").addEventListener("input", updatePreview);
  $("#description-input").addEventListener("input", updatePreview);

  const reload = () => {
    reloadBatches();
    refreshStats();
  };
  const debounced = debounce(reload, 300);
  const typed = () => {
    state.listToken += 1; // answers to earlier queries no longer count
    listBusy(true);
    debounced();
  };
  $("#filter-search").addEventListener("input", typed);
  $("#filter-prefix").addEventListener("input", typed);
  for (const id of ["#filter-status", "#sort-by", "#sort-order"]) $(id).addEventListener("change", reload);
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    reload();
  });
  $("#refresh-list").addEventListener("click", reload);
  $("#load-more").addEventListener("click", loadMore);

  $("#pipeline-form").addEventListener("submit", savePipeline);
  $("#pipeline-cancel-edit").addEventListener("click", resetPipelineForm);
  $("#new-pipeline").addEventListener("click", () => {
    resetPipelineForm();
    $("#pl-name").focus();
  });
  $("#pl-background").addEventListener("input", (e) => {
    $("#pl-background-value").textContent = e.target.value;
  });

  window.addEventListener("beforeunload", (e) => {
    if ([...state.sessions.values()].some((s) => !s.finished)) {
      e.preventDefault();
      e.returnValue = "";
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedulePoll(0);
  });

  renderFiles();
  showView();
  if (auth.current()) {
    enterApp().catch((err) => showError(err));
  } else {
    $("#signin-token").focus();
  }
}

init();
