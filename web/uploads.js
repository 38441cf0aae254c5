// Upload panels: one per batch submitted from this page, with per-file progress, and what this
// page knows was uploaded (which the batch list shows even before the service has counted it).

import { $, h } from "./dom.js";
import { formatBytes, plural } from "./format.js";
import { trackForResume } from "./resume.js";
import { store } from "./store.js";
import { toast } from "./toasts.js";

export const MAX_FILE_ROWS = 300; // files listed one by one; past this, only those in flight or failed

/** Files of this batch that storage accepted from this page (kept after its panel is dismissed). */
export function uploadedHere(batchId) {
  const names = store.state.uploaded.get(batchId) || new Set();
  return { count: names.size, has: (name) => names.has(String(name).normalize("NFC")) };
}

export function dropSessions() {
  for (const session of store.state.sessions.values()) session.cancel();
  store.state.sessions.clear();
  store.state.uploaded.clear();
  $("#upload-sessions").textContent = "";
}

export function uploadsInFlight() {
  return [...store.state.sessions.values()].some((s) => !s.finished);
}

export function showSession(session) {
  const { batch } = session;
  store.state.sessions.set(batch.id, session);
  trackForResume(session);
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
    { type: "button", class: "btn btn-small btn-quiet", hidden: true, onclick: () => { panel.remove(); store.state.sessions.delete(batch.id); } },
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
  let lastDone = 0;
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
      const inParts = item.partsTotal ? ` · part ${Math.min(item.partsDone + 1, item.partsTotal)} of ${item.partsTotal}` : "";
      const kept = item.partsAlready ? ` (${plural(item.partsAlready, "part")} already uploaded)` : "";
      row.status.textContent = {
        waiting: "Waiting for upload URL",
        queued: "Queued",
        uploading: `${pct}%${inParts}${kept}`,
        done: item.partsTotal ? `Uploaded in ${plural(item.partsTotal, "part")}${kept}` : "Uploaded",
        failed: "Failed",
        cancelled: "Stopped",
      }[item.status];
      row.el.dataset.partsSent = String(item.partsSent);
      row.error.hidden = !item.error || item.status === "done";
      row.error.textContent = item.error;
    }
    if (t.done !== lastDone) {
      lastDone = t.done;
      store.state.uploaded.set(batch.id, new Set(session.items.filter((i) => i.status === "done").map((i) => i.name)));
      store.emit("uploads", { batchId: batch.id }); // the batch's row counts them as uploaded now
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
    store.emit("follow");
  });
  render();
}
