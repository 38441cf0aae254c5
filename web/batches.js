// The batch list: filters, paging, one row per batch, and live refresh while batches move.
// A row's expanded part (files and actions) is detail.js.

import { api, auth } from "./api.js";
import { loadJobs, renderDetail } from "./detail.js";
import { $, badge, h, timeEl } from "./dom.js";
import { FINAL, plural, progressOf, progressText, sampleText, statusLabel } from "./format.js";
import { refreshStats } from "./stats.js";
import { store } from "./store.js";
import { setFormError, toast } from "./toasts.js";
import { uploadedHere } from "./uploads.js";

const POLL_MS = 2000;
const PAGE_SIZE = 25;

// id -> row: {batch, tbody, expanded, jobs, jobsCursor, page, notice, ...}; detail.js reads it too.
const rows = store.state.rows;

const list = {
  batches: [], // the rows shown, in order
  nextCursor: null,
  loadedParams: null, // the query the rows shown came from
  pageCursors: [], // the cursor each loaded page was fetched with (null: the first page)
  token: 0, // increments on every reload, so stale answers are dropped
  pollTimer: null,
  polling: false,
};

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
export function listBusy(busy) {
  const section = $("#list-section");
  if (busy) section.setAttribute("aria-busy", "true");
  else section.removeAttribute("aria-busy");
}

/** Answers to queries made before this call no longer count (the user is typing a filter). */
export function invalidateList() {
  list.token += 1;
}

export async function reloadBatches() {
  const token = ++list.token;
  $("#list-error").textContent = "";
  $("#list-status").textContent = "Loading batches…";
  listBusy(true);
  const params = listParams();
  let page;
  try {
    page = await api.listBatches(params);
  } catch (err) {
    if (token !== list.token) return;
    listBusy(false);
    $("#list-status").textContent = "";
    if (err.status !== 401) setFormError($("#list-error"), err);
    return;
  }
  if (token !== list.token) return;
  const expanded = new Set([...rows.values()].filter((r) => r.expanded).map((r) => r.batch.id));
  for (const body of document.querySelectorAll("#batch-table tbody")) body.remove();
  list.batches = [];
  rows.clear();
  list.loadedParams = params;
  list.pageCursors = [null];
  appendBatches(page.batches, 0, expanded);
  list.nextCursor = page.next_cursor;
  updateFooter();
  listBusy(false);
  schedulePoll();
}

async function loadMore() {
  if (!list.nextCursor) return;
  const token = list.token;
  const button = $("#load-more");
  button.disabled = true;
  button.textContent = "Loading…";
  listBusy(true);
  try {
    const cursor = list.nextCursor;
    const page = await api.listBatches({ ...list.loadedParams, cursor });
    if (token !== list.token) return;
    const firstNew = page.batches.find((b) => !rows.has(b.id));
    list.pageCursors.push(cursor);
    appendBatches(page.batches, list.pageCursors.length - 1);
    list.nextCursor = page.next_cursor;
    updateFooter();
    if (firstNew) $(".toggle", rows.get(firstNew.id).tbody).focus();
    schedulePoll();
  } catch (err) {
    setFormError($("#list-error"), err);
  } finally {
    button.disabled = false;
    button.textContent = "Load more";
    if (token === list.token) listBusy(false);
  }
}

function updateFooter() {
  const n = list.batches.length;
  const empty = $("#list-empty");
  empty.hidden = n > 0;
  $("#batch-table").hidden = n === 0;
  if (!n) {
    empty.textContent = list.nextCursor
      ? "No matches on this page of results yet. Load more to keep searching."
      : filtersActive()
        ? "No batches match these filters."
        : "No batches yet. Choose images above to submit your first batch.";
  }
  $("#load-more").hidden = !list.nextCursor;
  $("#list-status").textContent = n
    ? `Showing ${plural(n, "batch", "batches")}${list.nextCursor ? " (more available)" : ""}`
    : "";
}

function appendBatches(batches, pageIndex, expanded = new Set()) {
  const table = $("#batch-table");
  for (const batch of batches) {
    if (rows.has(batch.id)) continue;
    const row = createRow(batch);
    row.page = pageIndex;
    list.batches.push(batch);
    rows.set(batch.id, row);
    table.append(row.tbody);
    if (expanded.has(batch.id)) toggleRow(row, true);
  }
}

/** A batch just created here goes on top (unless the filters would hide it). */
function insertBatch(batch) {
  const p = listParams();
  if ((p.status && p.status !== batch.status) || (p.customer_prefix && p.customer_prefix !== batch.customer_prefix) || p.search) {
    return;
  }
  if (rows.has(batch.id)) return;
  const row = createRow(batch);
  row.page = 0;
  list.batches.unshift(batch);
  rows.set(batch.id, row);
  const table = $("#batch-table");
  const first = table.querySelector("tbody");
  if (first) table.insertBefore(row.tbody, first);
  else table.append(row.tbody);
  updateFooter();
}

function progressBar(batch, p) {
  const total = p.total || 1;
  const seg = (n, cls) => h("span", { class: `seg ${cls}`, style: `width:${((n || 0) * 100) / total}%` });
  const uploadedOnly = Math.max(0, p.uploaded - p.processed);
  return h(
    "div",
    {
      class: "bar bar-stacked",
      role: "progressbar",
      "aria-label": `Progress of ${batch.base_directory_name}`,
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(p.percent),
      "aria-valuetext": `${p.percent}% done: ${progressText(p)}`,
    },
    seg(p.succeeded, "seg-ok"),
    seg(p.failed, "seg-failed"),
    seg(p.cancelled, "seg-cancelled"),
    seg(uploadedOnly, "seg-uploaded"),
  );
}

function createRow(batch) {
  const detailId = `batch-detail-${batch.id}`;
  const toggle = h(
    "button",
    { type: "button", class: "toggle", "aria-expanded": "false", "aria-controls": detailId },
    h("span", { class: "chevron", "aria-hidden": "true" }),
    h("span", { class: "dir mono" }, batch.base_directory_name),
  );
  const desc = h("span", { class: "desc muted small" });
  const samples = h("span", { class: "samples muted small" });
  const filesCell = h("td", { class: "cell-files", "data-label": "Files" });
  const statusCell = h("td", { class: "cell-status", "data-label": "Status" });
  const progressCell = h("td", { class: "cell-progress", "data-label": "Progress" });
  const createdCell = h("td", { class: "cell-created", "data-label": "Created" });
  const mainRow = h("tr", { class: "batch-row" }, h("th", { scope: "row", class: "cell-batch" }, toggle, desc, samples), filesCell, statusCell, progressCell, createdCell);
  const detail = h("div", { class: "detail" });
  const detailRow = h("tr", { class: "detail-row", id: detailId, hidden: true }, h("td", { colspan: "5" }, detail));
  const tbody = h("tbody", { class: "batch", dataset: { batchId: batch.id } }, mainRow, detailRow);
  const row = { batch, tbody, toggle, desc, samples, filesCell, statusCell, progressCell, createdCell, detailRow, detail, expanded: false, jobs: null, jobsCursor: null };
  toggle.addEventListener("click", () => toggleRow(row));
  updateRow(row, batch);
  return row;
}

function updateRow(row, batch) {
  const previous = row.batch;
  row.batch = batch;
  const index = list.batches.findIndex((b) => b.id === batch.id);
  if (index >= 0) list.batches[index] = batch;
  row.tbody.dataset.status = batch.status;
  row.desc.textContent = batch.description || "";
  row.samples.textContent = sampleText(batch);
  row.filesCell.textContent = plural(batch.total_files, "file");
  row.statusCell.replaceChildren(badge(batch.status));
  renderProgress(row);
  row.createdCell.replaceChildren(timeEl(batch.created_at));
  if (row.expanded) renderDetail(row);
  if (previous && previous.status !== batch.status && FINAL.has(batch.status)) {
    toast(`${batch.base_directory_name} is ${statusLabel(batch.status)}.`, { kind: batch.status === "completed" ? "success" : "info" });
  }
}

function renderProgress(row) {
  const p = progressOf(row.batch, uploadedHere(row.batch.id).count);
  row.progressCell.replaceChildren(progressBar(row.batch, p), h("span", { class: "counts small muted" }, progressText(p)));
}

/** This page's uploads moved on: the counts at once, the file list at most twice a second. */
function uploadsMoved(row) {
  renderProgress(row);
  if (!row.expanded || row.detailTimer) return;
  row.detailTimer = setTimeout(() => {
    row.detailTimer = null;
    if (row.expanded) renderDetail(row);
  }, 500);
}

async function toggleRow(row, force) {
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

function removeBatch(id) {
  const row = rows.get(id);
  if (!row) return;
  const wasFocused = row.tbody.contains(document.activeElement);
  const next = row.tbody.nextElementSibling || row.tbody.previousElementSibling;
  row.tbody.remove();
  rows.delete(id);
  list.batches = list.batches.filter((b) => b.id !== id);
  updateFooter();
  if (wasFocused) {
    const target = next && next.tagName === "TBODY" ? $(".toggle", next) : $("#filter-search");
    target?.focus();
  }
}

export function clearBatches() {
  stopPolling();
  list.batches = [];
  rows.clear();
  for (const body of document.querySelectorAll("#batch-table tbody")) body.remove();
}

// -- live refresh ----------------------------------------------------------------------
function activeRows() {
  return [...rows.values()].filter((row) => !FINAL.has(row.batch.status));
}

export function schedulePoll(delay = POLL_MS) {
  if (list.pollTimer) clearTimeout(list.pollTimer);
  list.pollTimer = null;
  if (!auth.current()) return;
  if (!activeRows().length) return; // every visible batch is final: nothing to follow
  list.pollTimer = setTimeout(poll, delay);
}

function stopPolling() {
  if (list.pollTimer) clearTimeout(list.pollTimer);
  list.pollTimer = null;
}

const signature = (b) => JSON.stringify([b.status, b.progress, b.updated_at, b.started_at, b.completed_at, b.description]);

/**
 * One tick of live refresh. Cheap on purpose: one list request per loaded page that shows a
 * batch still moving (not one request per batch), the files of expanded batches, and a direct
 * read only for batches a page no longer returns (e.g. their status left the status filter).
 */
async function poll() {
  list.pollTimer = null;
  if (list.polling) return;
  if (document.hidden) {
    schedulePoll();
    return;
  }
  list.polling = true;
  const token = list.token;
  try {
    const active = activeRows();
    const seen = new Set();
    const pages = [...new Set(active.filter((r) => !r.expanded).map((r) => r.page ?? 0))].slice(0, 5);
    await Promise.all(
      pages.map(async (index) => {
        const cursor = list.pageCursors[index] ?? null;
        let page;
        try {
          page = await api.listBatches({ ...list.loadedParams, cursor });
        } catch {
          return; // the next tick tries again; errors of user actions are reported elsewhere
        }
        if (token !== list.token) return;
        for (const batch of page.batches) {
          const row = rows.get(batch.id);
          if (!row) continue; // new elsewhere: shown on the next reload
          seen.add(batch.id);
          if (signature(batch) !== signature(row.batch)) updateRow(row, batch);
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
          if (rows.get(batch.id) === row) updateRow(row, batch);
        } catch (err) {
          if (err.status === 404) removeBatch(row.batch.id);
        }
      }),
    ]);
    await refreshStats();
  } finally {
    list.polling = false;
    schedulePoll();
  }
}

export function setupBatches() {
  store.on("batch-created", ({ batch }) => {
    insertBatch(batch);
    refreshStats();
    schedulePoll(0);
  });
  store.on("batch-changed", ({ batch }) => {
    const row = rows.get(batch.id);
    if (row) updateRow(row, batch);
  });
  store.on("batch-removed", ({ id }) => removeBatch(id));
  store.on("uploads", ({ batchId }) => {
    const row = rows.get(batchId);
    if (row) uploadsMoved(row);
  });
  store.on("follow", () => schedulePoll(0));
  store.on("list-stale", () => reloadBatches());
  store.on("signed-out", clearBatches);
  $("#load-more").addEventListener("click", loadMore);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedulePoll(0);
  });
}
