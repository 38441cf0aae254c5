// A batch's expanded detail: its facts, its files (thumbnails or a table), and the actions on it
// (download the ZIP or the results, cancel, retry, delete). The rows themselves belong to
// batches.js; changes go back through the store.

import { api, auth } from "./api.js";
import { badge, h, timeEl } from "./dom.js";
import { FINAL, errorLabel, formatBytes, plural, sleep } from "./format.js";
import { integrationsBlock } from "./integrations.js";
import { store } from "./store.js";
import { ThumbGrid } from "./thumbnails.js";
import { confirmDialog, showError, toast } from "./toasts.js";
import { uploadedHere } from "./uploads.js";
import { openViewer } from "./viewer.js";

const downloads = new Set(); // ids of batches whose ZIP is being prepared
const rows = store.state.rows; // id -> the row shown for it (owned by batches.js)
const VIEW_KEY = "imgbatch.filesView";

function filesView() {
  try {
    return localStorage.getItem(VIEW_KEY) === "table" ? "table" : "grid";
  } catch {
    return "grid";
  }
}

function setFilesView(row, view) {
  try {
    localStorage.setItem(VIEW_KEY, view);
  } catch {
    /* private mode: for this page only */
  }
  row.view = view;
  renderDetail(row);
  row.detail.querySelector(`[data-action="view-${view}"]`)?.focus();
}

// What "Download results" offers: the export formats and the contact sheet.
const RESULTS = [
  { action: "results-csv", label: "Results as CSV", format: "csv" },
  { action: "results-xlsx", label: "Results as Excel (.xlsx)", format: "xlsx" },
  { action: "results-json", label: "Results as JSON", format: "json" },
  { action: "contact-sheet", label: "Contact sheet (PDF)" },
];

/** Read the batch with (more of) its files; the row follows through "batch-changed". */
export async function loadJobs(row, { more = false } = {}) {
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
    store.emit("batch-changed", { batch });
  } catch (err) {
    if (err.status === 404) {
      store.emit("batch-removed", { id: row.batch.id });
      toast(`${row.batch.base_directory_name} no longer exists.`);
      return;
    }
    row.jobsError = err.message;
    if (row.expanded) renderDetail(row);
  } finally {
    row.loadingJobs = false;
  }
}

export function renderDetail(row) {
  const { batch } = row;
  const focused = row.detail.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const actions = h("div", { class: "detail-actions", role: "group", "aria-label": `Actions for ${batch.base_directory_name}` });
  const busy = downloads.has(batch.id);
  actions.append(
    // aria-disabled, not disabled: a focused button keeps focus while the ZIP is prepared.
    h("button", { type: "button", class: "btn btn-small btn-primary", dataset: { action: "download" }, "aria-busy": busy ? "true" : null, "aria-disabled": busy ? "true" : null, onclick: () => downloadZip(row.batch.id) }, busy ? "Preparing ZIP…" : "Download ZIP"),
  );
  actions.append(resultsMenu(row));
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
    jobsBlock = filesBlock(row);
  }
  // The thumbnail grid and an open integrations form are kept across renders (tiles, pictures,
  // what is typed); so is focus in them.
  const integrations = integrationsBlock(batch, () => renderDetail(row));
  const active = document.activeElement;
  const keptFocus = row.grid?.el.contains(active) || (integrations.tagName === "FORM" && integrations.contains(active)) ? active : null;
  row.detail.replaceChildren(h("div", { class: "detail-top" }, meta, actions), integrations, notice || "", jobsBlock);
  if (keptFocus && keptFocus.isConnected) keptFocus.focus({ preventScroll: true });
  else if (focused) row.detail.querySelector(`[data-action="${focused}"]`)?.focus();
}

function filesBlock(row) {
  const { batch } = row;
  row.view = row.view || filesView();
  const switcher = h(
    "div",
    { class: "view-switch", role: "group", "aria-label": "Show files as" },
    h("button", { type: "button", class: "btn btn-small btn-quiet", dataset: { action: "view-grid" }, "aria-pressed": String(row.view === "grid"), onclick: () => setFilesView(row, "grid") }, "Thumbnails"),
    h("button", { type: "button", class: "btn btn-small btn-quiet", dataset: { action: "view-table" }, "aria-pressed": String(row.view === "table"), onclick: () => setFilesView(row, "table") }, "Table"),
  );
  const more = row.jobsCursor
    ? h("button", { type: "button", class: "btn btn-small btn-secondary", onclick: () => loadJobs(row, { more: true }) }, "Load more files")
    : null;
  const footer = h("p", { class: "muted small" }, `Showing ${plural(row.jobs.length, "file")} of ${batch.total_files.toLocaleString()}.`, " ", more);
  return h("div", { class: "files" }, h("div", { class: "files-head" }, h("h3", { class: "visually-hidden" }, "Files"), switcher),
    row.view === "grid" ? thumbGrid(row) : jobsTable(row), footer);
}

function thumbGrid(row) {
  const here = uploadedHere(row.batch.id);
  if (!row.grid) {
    row.grid = new ThumbGrid({
      label: `Files of ${row.batch.base_directory_name}`,
      onOpen: (job) => openFile(row, job),
    });
  }
  row.grid.update(row.jobs, (job) => (job.status === "awaiting_upload" && here.has(job.file_name) ? "uploaded" : job.status));
  return row.grid.el;
}

function openFile(row, job) {
  const index = row.jobs.findIndex((j) => j.id === job.id);
  openViewer({
    jobs: row.jobs,
    index: Math.max(0, index),
    pipelines: row.batch.pipelines || [],
    onClose: (shown) => {
      if (row.view === "grid" && row.grid) row.grid.focus(shown.id);
      else row.detail.querySelector(`tr.job[data-job-id="${shown.id}"] .job-open`)?.focus();
    },
  });
}

function resultsMenu(row) {
  const id = row.batch.id;
  const menuId = `results-menu-${id}`;
  const open = Boolean(row.resultsOpen);
  const toggle = h(
    "button",
    { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "results" }, "aria-expanded": String(open), "aria-controls": menuId },
    "Download results",
    h("span", { class: "chevron chevron-down", "aria-hidden": "true" }),
  );
  const setOpen = (value, focusToggle = false) => {
    row.resultsOpen = value;
    renderDetail(row);
    if (focusToggle) row.detail.querySelector('[data-action="results"]')?.focus();
  };
  toggle.addEventListener("click", () => {
    setOpen(!open);
    if (!open) row.detail.querySelector(`#${CSS.escape(menuId)} button`)?.focus();
  });
  const list = h(
    "ul",
    { class: "menu", id: menuId, hidden: !open },
    RESULTS.map((item) =>
      h("li", {}, h("button", { type: "button", class: "menu-item", dataset: { action: item.action }, onclick: () => { row.resultsOpen = false; downloadResults(id, item); } },
        item.label, item.hint ? h("span", { class: "muted small" }, ` (${item.hint})`) : null)),
    ),
  );
  const wrap = h("div", { class: "menu-wrap" }, toggle, list);
  wrap.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && row.resultsOpen) {
      event.preventDefault();
      setOpen(false, true);
    }
  });
  wrap.addEventListener("focusout", (event) => {
    if (row.resultsOpen && event.relatedTarget && !wrap.contains(event.relatedTarget)) {
      row.resultsOpen = false;
      list.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
    }
  });
  return wrap;
}

/** Results (csv/xlsx/json) or the contact sheet: the API stores the file and hands out its URL. */
async function downloadResults(id, item) {
  const name = nameOf(id) || "batch";
  setNotice(id, { kind: "info", message: item.format ? `Preparing the results of ${name}…` : `Drawing the contact sheet of ${name}…` });
  try {
    const data = item.format ? await api.results(id, item.format) : await api.contactSheet(id, 1);
    triggerDownload(data.url, data.file_name);
    let action = null;
    if (data.parts > 1) {
      action = h("span", { class: "parts" }, " Other parts: ",
        Array.from({ length: data.parts - 1 }, (_, n) => h("button", {
          type: "button", class: "btn btn-small btn-secondary", dataset: { action: `contact-sheet-${n + 2}` },
          onclick: async () => {
            try {
              const part = await api.contactSheet(id, n + 2);
              triggerDownload(part.url, part.file_name);
            } catch (err) {
              showError(err, `Could not get part ${n + 2} of the contact sheet`);
            }
          },
        }, `Part ${n + 2}`)));
    }
    setNotice(id, { kind: "success", message: `Downloading ${data.file_name}.${data.parts > 1 ? ` The sheet has ${data.parts} parts of 300 files.` : ""}`, action });
  } catch (err) {
    setNotice(id, { kind: "error", message: `Download failed: ${err.message}` });
    showError(err, `Could not download the ${item.format ? "results" : "contact sheet"} of ${name}`);
  }
}

function metaItem(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function jobsTable(row) {
  const { batch } = row;
  const several = (batch.pipelines || []).length > 1;
  const names = new Map((batch.pipelines || []).map((p) => [p.id, p.name]));
  const here = uploadedHere(batch.id);
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
    // Storage accepted it from this page; the service has not counted it yet.
    const status = job.status === "awaiting_upload" && here.has(job.file_name) ? "uploaded" : job.status;
    body.append(
      h(
        "tr",
        { class: "job", dataset: { jobId: job.id, status: job.status } },
        h("th", { scope: "row", class: "job-name", "data-label": "File" },
          h("button", { type: "button", class: "job-open link-button", "aria-label": `View ${job.file_name}`, onclick: () => openFile(row, job) }, job.file_name)),
        h("td", { "data-label": "Size" }, formatBytes(job.size)),
        h("td", { "data-label": "Status" }, badge(status)),
        h("td", { "data-label": "Output" }, outputs.length ? h("ul", { class: "outputs" }, outputs) : h("span", { class: "muted" }, "–")),
        h(
          "td",
          { "data-label": "Error", class: "job-error" },
          job.error ? [h("strong", { class: "error-label" }, errorLabel(job.error.code)), " ", h("code", {}, job.error.code), " ", job.error.message] : h("span", { class: "muted" }, "–"),
        ),
      ),
    );
  }
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
  );
}

// -- actions ---------------------------------------------------------------------------
function setNotice(id, notice) {
  const row = rows.get(id);
  if (!row) return;
  row.notice = notice;
  if (row.expanded) renderDetail(row);
}

const nameOf = (id) => rows.get(id)?.batch.base_directory_name;

async function cancelBatch(id) {
  const row = rows.get(id);
  try {
    const batch = await api.cancelBatch(id);
    store.state.sessions.get(id)?.cancel();
    toast(`Cancelled ${batch.base_directory_name}.`, { kind: "success" });
    store.emit("batch-changed", { batch });
    if (row) await loadJobs(row);
    store.emit("stats-stale");
  } catch (err) {
    showError(err, `Could not cancel ${nameOf(id) || "the batch"}`);
    if (row && err.status === 409) loadJobs(row); // the batch moved on meanwhile: show where it is now
  }
}

async function retryBatch(id) {
  const row = rows.get(id);
  try {
    const batch = await api.retryBatch(id);
    toast(`Retrying the failed files of ${batch.base_directory_name}.`, { kind: "success" });
    store.emit("batch-changed", { batch });
    if (row) await loadJobs(row);
    store.emit("stats-stale");
    store.emit("follow");
  } catch (err) {
    showError(err, `Could not retry ${nameOf(id) || "the batch"}`);
    if (row && err.status === 409) loadJobs(row);
  }
}

async function deleteBatch(id) {
  const name = nameOf(id) || "this batch";
  const ok = await confirmDialog({
    title: `Delete ${name}?`,
    body: "This removes the batch, its files and every upload, output and archive stored for it. It cannot be undone.",
    confirmLabel: "Delete batch",
  });
  if (!ok) return;
  try {
    await api.deleteBatch(id);
    store.state.sessions.get(id)?.cancel();
    store.emit("batch-removed", { id });
    toast(`Deleted ${name}.`, { kind: "success" });
    store.emit("stats-stale");
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
  if (downloads.has(id)) return;
  downloads.add(id);
  const name = () => nameOf(id) || "batch";
  setNotice(id, { kind: "info", message: partial ? "Preparing a ZIP of the finished files…" : "Preparing the ZIP…" });
  try {
    const started = Date.now();
    for (;;) {
      if (!rows.has(id) || !auth.current()) return;
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
        { type: "button", class: "btn btn-small btn-secondary", dataset: { action: "download-partial" }, onclick: () => { downloads.delete(id); downloadZip(id, true); } },
        "Download partial",
      );
      setNotice(id, { kind: "warning", message: `${err.message} `, action });
      toast(`${name()}: ${err.message}`, { kind: "error" });
    } else {
      setNotice(id, { kind: "error", message: `Download failed: ${err.message}` });
      showError(err, `Could not download ${name()}`);
    }
  } finally {
    downloads.delete(id);
    const row = rows.get(id);
    if (row?.expanded) renderDetail(row);
  }
}

export function setupDetail() {
  store.on("signed-out", () => downloads.clear());
}
