// Pure formatting and the progress vocabulary, shared by every screen (no DOM here).
//
// One vocabulary with the CLI (imgbatch/progress.py): "uploaded" is a file storage has
// accepted; "processed" is a file the service finished with, "succeeded" or "failed";
// "cancelled" files are never processed.

export const FINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
export const STATUS_ORDER = ["queued", "processing", "completed", "completed_with_errors", "failed", "cancelled"];

export function formatBytes(bytes) {
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

export const statusLabel = (status) => String(status || "").replaceAll("_", " ");
export const plural = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A batch's counters, with `uploaded` never below what this page knows.
 *
 * The service counts a file as uploaded once its storage event has been handled, which can lag
 * behind the upload itself; a file this page has just uploaded, or one that succeeded, was
 * certainly accepted by storage, so the figure shown is the largest of the three.
 */
export function progressOf(batch, knownUploaded = 0) {
  const p = batch.progress || {};
  const total = Number(batch.total_files) || 0;
  const succeeded = Number(p.succeeded) || 0;
  const failed = Number(p.failed) || 0;
  const cancelled = Number(p.cancelled) || 0;
  let uploaded = Math.max(Number(p.uploaded) || 0, knownUploaded, succeeded);
  if (total) uploaded = Math.min(uploaded, total);
  return { total, uploaded, succeeded, failed, cancelled, processed: succeeded + failed, percent: Number(p.percent) || 0 };
}

/** "20 uploaded · 2 of 20 processed · 1 failed": uploads and processing as separate figures. */
export function progressText(p) {
  const parts = [`${p.uploaded.toLocaleString()} uploaded`, `${p.processed.toLocaleString()} of ${p.total.toLocaleString()} processed`];
  if (p.failed) parts.push(`${p.failed.toLocaleString()} failed`);
  if (p.cancelled) parts.push(`${p.cancelled.toLocaleString()} cancelled`);
  return parts.join(" · ");
}

// Job error codes in words (the CLI explains the less obvious ones the same way, imgbatch/render.py).
export const ERROR_LABELS = {
  not_an_image: "Not an image",
  unsupported_format: "Image type not supported",
  too_many_pixels: "Too many pixels",
  corrupt_image: "Damaged image",
  output_too_large: "Output too large",
  exceeds_max_bytes: "Over the size limit (max bytes) even at the lowest quality",
  size_mismatch: "Stored size differs from the declared size",
  upload_expired: "Not uploaded in time",
  missing_upload: "Upload missing",
  file_too_large: "Over the per-file size limit",
};

export const errorLabel = (code) => ERROR_LABELS[code] || String(code || "").replaceAll("_", " ");

/** "a.png, b.png, c.png +17 more": the batch's first file names (the grouped-jobs view). */
export function sampleText(batch) {
  const names = batch.sample_file_names || [];
  const rest = (Number(batch.total_files) || 0) - names.length;
  return names.join(", ") + (rest > 0 ? ` +${rest.toLocaleString()} more` : "");
}
