// Presigned S3 POST uploads with limited concurrency and progress events.
// For each upload U: a multipart form with every U.fields entry first, then the file as `file`.

import { api } from "./api.js";

export const CONCURRENCY = 4;

/** S3 answers errors as XML: <Error><Code>..</Code><Message>..</Message></Error>. */
export function describeS3Error(status, statusText, body) {
  let code = "";
  let message = "";
  if (body) {
    try {
      const doc = new DOMParser().parseFromString(body, "application/xml");
      code = doc.querySelector("Error > Code")?.textContent?.trim() || "";
      message = doc.querySelector("Error > Message")?.textContent?.trim() || "";
    } catch {
      /* not XML */
    }
    if (!code && !message && body.length < 300 && !/^\s*</.test(body)) message = body.trim();
  }
  if (status === 0) return "Network error: the storage service could not be reached (connection or CORS).";
  const head = `HTTP ${status}${code ? ` ${code}` : statusText ? ` ${statusText}` : ""}`;
  return message ? `${head}: ${message}` : head;
}

function postFile(upload, file, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve) => {
    const form = new FormData();
    for (const [key, value] of Object.entries(upload.fields || {})) form.append(key, value);
    form.append("file", file, file.name);
    xhr.open(upload.method || "POST", upload.url);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve({ ok: true });
      else resolve({ ok: false, error: describeS3Error(xhr.status, xhr.statusText, xhr.responseText) });
    });
    xhr.addEventListener("error", () => resolve({ ok: false, error: describeS3Error(0, "", "") }));
    xhr.addEventListener("timeout", () => resolve({ ok: false, error: "The upload timed out." }));
    xhr.addEventListener("abort", () => resolve({ ok: false, aborted: true }));
    xhr.send(form);
  });
  return { xhr, promise };
}

/**
 * One batch's uploads. `files` are the File objects submitted, in order.
 * Emits "change" (throttled by the caller) and "done".
 */
export class UploadSession extends EventTarget {
  constructor(batch, files, { concurrency = CONCURRENCY } = {}) {
    super();
    this.batch = batch;
    this.concurrency = concurrency;
    this.items = files.map((file) => ({
      name: file.name.normalize("NFC"),
      file,
      size: file.size,
      loaded: 0,
      status: "waiting", // waiting (for its URL) | queued | uploading | done | failed | cancelled
      error: "",
      upload: null,
      xhr: null,
    }));
    this.byName = new Map(this.items.map((item) => [item.name, item]));
    this.queue = [];
    this.fetching = true;
    this.finished = false;
    this.cancelled = false;
    this.wake = null;
  }

  get totals() {
    const t = { files: this.items.length, bytes: 0, loaded: 0, done: 0, failed: 0, cancelled: 0, active: 0 };
    for (const item of this.items) {
      t.bytes += item.size;
      t.loaded += item.status === "done" ? item.size : item.loaded;
      if (item.status === "done") t.done += 1;
      else if (item.status === "failed") t.failed += 1;
      else if (item.status === "cancelled") t.cancelled += 1;
      else if (item.status === "uploading") t.active += 1;
    }
    t.percent = t.bytes ? Math.floor((t.loaded * 100) / t.bytes) : 100;
    return t;
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }

  /** Start with the create response's uploads, then page through uploads_next_cursor. */
  async start(firstUploads, nextCursor) {
    this.enqueue(firstUploads);
    const workers = Array.from({ length: this.concurrency }, () => this.worker());
    try {
      let cursor = nextCursor;
      while (cursor && !this.cancelled) {
        const page = await api.uploads(this.batch.id, cursor);
        this.enqueue(page.uploads || []);
        cursor = page.next_cursor;
      }
    } catch (err) {
      this.pageError = `Could not get the remaining upload URLs: ${err.message}`;
    } finally {
      this.fetching = false;
      this.poke();
    }
    await Promise.all(workers);
    for (const item of this.items) {
      if (item.status === "waiting") {
        item.status = "failed";
        item.error = this.pageError || "The server gave no upload URL for this file (the upload window may have expired).";
      }
    }
    this.finished = true;
    this.changed();
    this.dispatchEvent(new Event("done"));
  }

  enqueue(uploads) {
    for (const upload of uploads) {
      const item = this.byName.get(String(upload.file_name).normalize("NFC"));
      if (!item || item.status !== "waiting") continue;
      item.upload = upload;
      item.status = "queued";
      this.queue.push(item);
    }
    this.changed();
    this.poke();
  }

  poke() {
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }

  async next() {
    for (;;) {
      if (this.cancelled) return null;
      if (this.queue.length) return this.queue.shift();
      if (!this.fetching) return null;
      await new Promise((resolve) => {
        const previous = this.wake;
        this.wake = () => {
          if (previous) previous();
          resolve();
        };
      });
    }
  }

  async worker() {
    for (;;) {
      const item = await this.next();
      if (!item) return;
      await this.send(item);
    }
  }

  async send(item) {
    item.status = "uploading";
    item.loaded = 0;
    item.error = "";
    this.changed();
    const { xhr, promise } = postFile(item.upload, item.file, (loaded) => {
      item.loaded = Math.min(loaded, item.size);
      this.changed();
    });
    item.xhr = xhr;
    const result = await promise;
    item.xhr = null;
    if (result.ok) {
      item.status = "done";
      item.loaded = item.size;
    } else if (result.aborted) {
      item.status = "cancelled";
      item.error = "Upload stopped.";
    } else {
      item.status = "failed";
      item.error = result.error;
    }
    this.changed();
  }

  /** Upload again the files whose upload failed (their presigned POST must still be valid). */
  async retryFailed() {
    const again = this.items.filter((i) => i.status === "failed" && i.upload);
    if (!again.length) return;
    this.finished = false;
    this.cancelled = false;
    for (const item of again) {
      item.status = "queued";
      this.queue.push(item);
    }
    this.changed();
    await Promise.all(Array.from({ length: Math.min(this.concurrency, again.length) }, () => this.worker()));
    this.finished = true;
    this.changed();
    this.dispatchEvent(new Event("done"));
  }

  cancel() {
    this.cancelled = true;
    for (const item of this.items) {
      if (item.xhr) item.xhr.abort();
      if (item.status === "waiting" || item.status === "queued") {
        item.status = "cancelled";
        item.error = "Upload stopped.";
      }
    }
    this.queue = [];
    this.poke();
    this.changed();
  }
}
