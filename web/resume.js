// Continuing uploads after the page was reloaded or closed.
//
// While a batch uploads from this page, localStorage remembers (per batch) each file not yet
// uploaded: its name, size and lastModified, and for files uploaded in parts the SHA-256 of their
// first MiB. A page cannot keep File objects across a reload, so after one it asks for the same
// files again and accepts a chosen file only when all of these match; then it uploads the files
// the batch still waits for, and a file in parts continues at its first part S3 does not hold.
// Records go once their batch has every file, is final or gone, or the user says to forget them.

import { api, request } from "./api.js";
import { $, h } from "./dom.js";
import { formatBytes, plural } from "./format.js";
import { toast } from "./toasts.js";

const KEY = "imgbatch.resume.v1";
const HEAD_BYTES = 1024 * 1024;
const FINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "{}") || {};
  } catch {
    return {};
  }
}

function save(records) {
  try {
    if (Object.keys(records).length) localStorage.setItem(KEY, JSON.stringify(records));
    else localStorage.removeItem(KEY);
  } catch {
    /* private mode or full storage: a reload will not offer to continue */
  }
}

export function forget(batchId) {
  const records = load();
  delete records[batchId];
  save(records);
}

/** SHA-256 (hex) of a file's first MiB: tells two files of one name, size and date apart. */
export async function headHash(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.slice(0, HEAD_BYTES).arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Keep the record of a session's files up to date as they upload. */
export function trackForResume(session) {
  const { batch } = session;
  const record = {
    batch: { id: batch.id, owner: batch.owner, base_directory_name: batch.base_directory_name, description: batch.description },
    saved_at: new Date().toISOString(),
    files: {},
  };
  const earlier = load()[batch.id]?.files || {}; // a resumed session may carry only some of them
  Object.assign(record.files, earlier);
  for (const item of session.items) {
    record.files[item.name] = { ...earlier[item.name], size: item.size, lastModified: item.file.lastModified };
  }
  const hashing = new Map();
  let timer = 0;
  const write = () => {
    timer = 0;
    for (const item of session.items) {
      if (item.status === "done") delete record.files[item.name];
    }
    const records = load();
    if (Object.keys(record.files).length) records[batch.id] = record;
    else delete records[batch.id];
    save(records);
  };
  const soon = () => {
    if (!timer) timer = setTimeout(write, 300);
  };
  session.addEventListener("change", () => {
    for (const item of session.items) {
      const entry = record.files[item.name];
      if (entry && item.upload?.method === "MULTIPART" && !entry.head && !hashing.has(item.name)) {
        hashing.set(item.name, headHash(item.file).then((hex) => {
          entry.head = hex;
          soon();
        }).catch(() => {}));
      }
    }
    soon();
  });
  session.addEventListener("done", () => Promise.all(hashing.values()).then(write));
  write();
}

/** What is wrong with `file` as the one recorded, or "" when it is the same file. */
export async function mismatch(file, entry) {
  if (file.size !== entry.size) return `size differs (${formatBytes(file.size)}, expected ${formatBytes(entry.size)})`;
  if (file.lastModified !== entry.lastModified) return "last modified at another time";
  if (entry.head && (await headHash(file)) !== entry.head) return "its content differs";
  return "";
}

/** After sign-in: offer to continue every interrupted batch of this owner. `start(batch, files,
 * uploads)` begins an upload session (submit.js owns that). */
export async function offerResume(start) {
  const records = load();
  if (!Object.keys(records).length) return;
  let owner = null;
  try {
    owner = (await request("GET", "me")).data.owner;
  } catch {
    return;
  }
  for (const record of Object.values(records)) {
    if (record.batch.owner !== owner || $(`[data-resume-batch="${CSS.escape(record.batch.id)}"]`)) continue;
    try {
      await offerOne(record, start);
    } catch (err) {
      if (err.status === 404) forget(record.batch.id);
    }
  }
}

async function pendingUploads(batchId) {
  const uploads = [];
  let cursor = null;
  do {
    const page = await api.uploads(batchId, cursor);
    uploads.push(...(page.uploads || []));
    cursor = page.next_cursor;
  } while (cursor);
  return uploads;
}

async function offerOne(record, start) {
  const batch = await api.getBatch(record.batch.id, { jobs_limit: 1 });
  if (FINAL.has(batch.status)) {
    forget(batch.id);
    return;
  }
  const pending = (await pendingUploads(batch.id)).filter((u) => record.files[String(u.file_name).normalize("NFC")]);
  if (!pending.length) {
    forget(batch.id);
    return;
  }
  const bytes = pending.reduce((sum, u) => sum + record.files[String(u.file_name).normalize("NFC")].size, 0);
  const inputId = `resume-input-${batch.id}`;
  const problems = h("ul", { class: "resume-problems small", "aria-live": "polite" });
  const input = h("input", { type: "file", id: inputId, class: "visually-hidden", multiple: true });
  const panel = h(
    "section",
    { class: "upload-session resume-offer", "aria-label": `Continue uploads of ${batch.base_directory_name}`, dataset: { resumeBatch: batch.id } },
    h("h3", {}, "Continue uploading ", h("span", { class: "mono" }, batch.base_directory_name)),
    h(
      "p",
      { class: "small" },
      `The page was closed or reloaded while this batch was uploading: ${plural(pending.length, "file")} (${formatBytes(bytes)}) `,
      `not uploaded yet. Choose the same files again to continue; parts already uploaded are not sent again.`,
    ),
    h("ul", { class: "resume-files small" }, pending.slice(0, 20).map((u) => h("li", { class: "file-name" }, u.file_name)),
      pending.length > 20 ? h("li", { class: "muted" }, `…and ${plural(pending.length - 20, "more file")}`) : null),
    problems,
    h(
      "div",
      { class: "upload-actions" },
      input,
      h("label", { for: inputId, class: "btn btn-small btn-primary" }, "Choose the files"),
      h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: () => { forget(batch.id); panel.remove(); } }, "Forget"),
    ),
  );
  input.addEventListener("change", async () => {
    const chosen = [...input.files];
    input.value = "";
    problems.textContent = "";
    const byName = new Map(pending.map((u) => [String(u.file_name).normalize("NFC"), u]));
    const files = [];
    const uploads = [];
    for (const file of chosen) {
      const name = file.name.normalize("NFC");
      const upload = byName.get(name);
      if (!upload) {
        problems.append(h("li", {}, `${file.name}: not one of the files this batch waits for`));
        continue;
      }
      const why = await mismatch(file, record.files[name]);
      if (why) {
        problems.append(h("li", {}, `${file.name}: not the same file (${why})`));
        continue;
      }
      files.push(file);
      uploads.push(upload);
      byName.delete(name);
    }
    if (!files.length) return;
    panel.remove();
    if (byName.size) toast(`${plural(byName.size, "file")} of ${batch.base_directory_name} still to choose; reload to be asked again.`);
    start(batch, files, uploads);
  });
  $("#upload-sessions").prepend(panel);
}
