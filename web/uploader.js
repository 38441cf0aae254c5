// Uploads to S3 with limited concurrency and progress events. For each upload U:
// - method POST: a multipart form with every U.fields entry first, then the file as `file`;
// - method MULTIPART (files above the service's threshold): the API hands out presigned URLs of
//   the parts S3 does not hold yet (so a file started before a reload continues where it
//   stopped), each part is PUT and retried on its own, then the API joins them.

import { api } from "./api.js";

export const CONCURRENCY = 4;
export const PART_CONCURRENCY = 3; // parts of one file in flight at once
export const PART_ATTEMPTS = 4;
// The next page of upload links is fetched once fewer than this many per worker are queued: a
// big batch's links are signed with temporary credentials, so none should wait long before use.
export const LINKS_AHEAD = 2;

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

function putPart(url, blob, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve) => {
    xhr.open("PUT", url);
    xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve({ ok: true });
      else resolve({ ok: false, status: xhr.status, error: describeS3Error(xhr.status, xhr.statusText, xhr.responseText) });
    });
    xhr.addEventListener("error", () => resolve({ ok: false, status: 0, error: describeS3Error(0, "", "") }));
    xhr.addEventListener("timeout", () => resolve({ ok: false, status: 0, error: "The upload timed out." }));
    xhr.addEventListener("abort", () => resolve({ ok: false, aborted: true }));
    xhr.send(blob); // a Blob: the browser sends its exact length, which the URL signs
  });
  return { xhr, promise };
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const retryable = (status) => status === 0 || status === 429 || status >= 500;

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
      xhrs: new Set(), // parts in flight (uploads in parts)
      partsTotal: 0,
      partsDone: 0,
      partsAlready: 0, // held by S3 when this page started the file: not sent again
      partsSent: 0,
    }));
    this.byName = new Map(this.items.map((item) => [item.name, item]));
    this.queue = [];
    this.fetching = true;
    this.finished = false;
    this.cancelled = false;
    this.wake = null;
    this.onLinksWanted = null;
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
        await this.linksWanted();
        if (this.cancelled) break;
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
    this.wantLinks();
  }

  /** Resolves when the queue is short enough for the next page of links (see LINKS_AHEAD). */
  linksWanted() {
    return new Promise((resolve) => {
      this.onLinksWanted = resolve;
      this.wantLinks();
    });
  }

  wantLinks() {
    if (this.onLinksWanted && (this.cancelled || this.queue.length < LINKS_AHEAD * this.concurrency)) {
      const resolve = this.onLinksWanted;
      this.onLinksWanted = null;
      resolve();
    }
  }

  async next() {
    for (;;) {
      if (this.cancelled) return null;
      if (this.queue.length) {
        const item = this.queue.shift();
        this.wantLinks();
        return item;
      }
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
    if (item.upload.method === "MULTIPART") {
      await this.sendInParts(item);
      this.changed();
      return;
    }
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

  /** Send the parts S3 does not hold yet, then have the API join them. */
  async sendInParts(item, round = 1) {
    const fail = (message) => {
      item.status = "failed";
      item.error = message;
    };
    let info;
    const parts = [];
    try {
      info = await api.startMultipart(this.batch.id, item.upload.job_id);
      parts.push(...info.parts);
      for (let page = info; page.next_after !== null && page.next_after !== undefined; ) {
        page = await api.startMultipart(this.batch.id, item.upload.job_id, page.next_after);
        parts.push(...page.parts);
      }
    } catch (err) {
      fail(`Could not start the upload in parts: ${err.message}`);
      return;
    }
    if (info.size !== item.size) {
      fail(`This file is ${item.size} bytes; the batch expects ${info.size} bytes.`);
      return;
    }
    item.partsTotal = info.parts_total;
    item.partsDone = info.parts_uploaded.length;
    if (round === 1) item.partsAlready = item.partsDone;
    const inFlight = new Map();
    let held = info.bytes_uploaded;
    const show = () => {
      let moving = 0;
      for (const n of inFlight.values()) moving += n;
      item.loaded = Math.min(item.size, held + moving);
      this.changed();
    };
    show();
    const queue = parts.slice();
    let failure = "";
    const worker = async () => {
      while (queue.length && !this.cancelled && !failure) {
        const part = queue.shift();
        const blob = item.file.slice((part.part_number - 1) * info.part_size, (part.part_number - 1) * info.part_size + part.size);
        for (let attempt = 1; ; attempt += 1) {
          const { xhr, promise } = putPart(part.url, blob, (loaded) => {
            inFlight.set(part.part_number, Math.min(loaded, part.size));
            show();
          });
          item.xhrs.add(xhr);
          const result = await promise;
          item.xhrs.delete(xhr);
          inFlight.delete(part.part_number);
          if (result.ok) {
            held += part.size;
            item.partsDone += 1;
            item.partsSent += 1;
            show();
            break;
          }
          if (result.aborted) return;
          if (!retryable(result.status) || attempt >= PART_ATTEMPTS) {
            failure = `Part ${part.part_number} of ${item.partsTotal}: ${result.error}${retryable(result.status) ? ` (gave up after ${attempt} attempts)` : ""}`;
            return;
          }
          show();
          await pause(Math.min(20000, 500 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
          if (this.cancelled) return;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, parts.length) }, worker));
    if (this.cancelled) {
      item.status = "cancelled";
      item.error = "Upload stopped; the parts already sent are kept.";
      return;
    }
    if (failure) {
      fail(failure);
      return;
    }
    try {
      await api.completeMultipart(this.batch.id, item.upload.job_id);
    } catch (err) {
      // a part went missing or changed meanwhile (another tab?): send what is missing once more
      if (err.status === 400 && round === 1) return this.sendInParts(item, 2);
      fail(`Could not complete the upload: ${err.message}`);
      return;
    }
    item.status = "done";
    item.loaded = item.size;
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
      for (const xhr of item.xhrs) xhr.abort();
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
