// The "New batch" form: choosing files (non-images are skipped per file, with the reason),
// the naming preview, the pipeline choices, and submitting (which starts an upload panel).

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { formatBytes, plural } from "./format.js";
import { autoDescription, customerPrefix, directoryName, prefixCounts, utcDate } from "./naming.js";
import { describePipeline } from "./pipelines.js";
import { classifyFile } from "./sniff.js";
import { store } from "./store.js";
import { setFormError, showError, toast } from "./toasts.js";
import { UploadSession } from "./uploader.js";
import { MAX_FILE_ROWS, showSession } from "./uploads.js";

const form = {
  chosen: [], // {file, contentType}: images to send, in order
  skipped: [], // {name, reason}: files that will not be sent, and why
  adding: Promise.resolve(), // files are added one pick/drop at a time, in order
};

const key = (name) => name.normalize("NFC").toLowerCase();

/** Add picked or dropped files: each is sniffed (first bytes) as the CLI does before it is taken. */
function addFiles(fileList) {
  const files = [...fileList];
  form.adding = form.adding.then(async () => {
    const verdicts = await Promise.all(files.map((file) => classifyFile(file)));
    const seen = new Set(form.chosen.map((c) => key(c.file.name)));
    let duplicates = 0;
    let skipped = 0;
    files.forEach((file, i) => {
      const verdict = verdicts[i];
      if (!verdict.contentType) {
        form.skipped = [...form.skipped.filter((s) => s.name !== file.name), { name: file.name, reason: verdict.reason }];
        skipped += 1;
      } else if (seen.has(key(file.name))) {
        duplicates += 1;
      } else {
        seen.add(key(file.name));
        form.chosen.push({ file, contentType: verdict.contentType });
      }
    });
    if (duplicates) toast(`${plural(duplicates, "file")} skipped: a file with the same name is already chosen.`);
    if (skipped) toast(`${plural(skipped, "file")} skipped: not an image the service can process (see the list).`);
    $("#submit-error").textContent = "";
    renderFiles();
  });
  return form.adding;
}

function clearFiles() {
  form.chosen = [];
  form.skipped = [];
  renderFiles();
}

function renderFiles() {
  const list = $("#file-list");
  const summary = $("#file-summary");
  list.textContent = "";
  const files = form.chosen.map((c) => c.file);
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const parts = files.length ? [`${plural(files.length, "file")} chosen · ${formatBytes(total)}`] : [];
  if (form.skipped.length) parts.push(`${plural(form.skipped.length, "file")} skipped`);
  summary.textContent = parts.join(" · ");
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
              form.chosen.splice(index, 1);
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
  const skippedList = $("#file-skipped");
  skippedList.textContent = "";
  skippedList.hidden = !form.skipped.length;
  for (const { name, reason } of form.skipped.slice(0, MAX_FILE_ROWS)) {
    skippedList.append(
      h("li", { class: "skipped-file", dataset: { file: name } }, h("span", { class: "file-name" }, name), h("span", { class: "skip-reason small" }, reason)),
    );
  }
  if (form.skipped.length > MAX_FILE_ROWS) {
    skippedList.append(h("li", { class: "muted small" }, `…and ${plural(form.skipped.length - MAX_FILE_ROWS, "more file")}`));
  }
  $("#clear-files").hidden = files.length === 0 && form.skipped.length === 0;
  updatePreview();
}

function updatePreview() {
  const names = form.chosen.map((c) => c.file.name);
  const override = $("#prefix-input").value.trim();
  const parsed = names.length ? customerPrefix(names) : null;
  const prefix = override || parsed;
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
  $("#preview-directory").textContent = prefix ? directoryName(prefix, utcDate()) : "–";
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

function renderChoices() {
  const { pipelines } = store.state;
  const box = $("#pipeline-choices");
  const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  box.textContent = "";
  if (!pipelines.length) {
    box.append(
      h("p", { class: "muted small" }, "No pipelines yet. ", h("a", { href: "#pipelines" }, "Create a pipeline"), " first."),
    );
    return;
  }
  for (const p of pipelines) {
    const id = `choice-${p.id}`;
    const selected = checked.has(p.id) || (pipelines.length === 1 && !checked.size);
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
    // A dropped folder arrives as a File of size 0 and no type: not something to sniff.
    const files = [...(e.dataTransfer?.files || [])].filter((f) => f.size > 0 || f.type);
    if (files.length) addFiles(files);
  });
  // Dropping a file anywhere else would navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

async function submitBatch(event) {
  event.preventDefault();
  await form.adding; // files still being sniffed belong to this submit
  const error = $("#submit-error");
  error.textContent = "";
  const pipelineIds = [...document.querySelectorAll("#pipeline-choices input:checked")].map((i) => i.value);
  if (!form.chosen.length) {
    error.textContent = form.skipped.length
      ? "None of the chosen files is an image the service can process; see the skipped files."
      : "Choose at least one image to upload.";
    $("#file-input").focus();
    return;
  }
  if (!pipelineIds.length) {
    error.textContent = store.state.pipelines.length
      ? "Choose at least one pipeline."
      : "Create a pipeline first (Pipelines tab), then choose it here.";
    ($("#pipeline-choices input") || $("#pipeline-choices a"))?.focus();
    return;
  }
  const payload = {
    pipeline_ids: pipelineIds,
    // The type found in the bytes, as the CLI sends it: a WebP named .jpg goes as image/webp.
    files: form.chosen.map(({ file, contentType }) => ({ name: file.name, size: file.size, content_type: contentType })),
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
  const files = form.chosen.map((c) => c.file);
  form.chosen = [];
  form.skipped = [];
  $("#prefix-input").value = "";
  $("#description-input").value = "";
  renderFiles();

  const session = new UploadSession(created.batch, files);
  showSession(session);
  store.emit("batch-created", { batch: created.batch });
  session.start(created.uploads || [], created.uploads_next_cursor).catch((err) => showError(err, "Upload"));
}

/** Continue a batch's uploads with files chosen again after a reload (resume.js). */
export function resumeSession(batch, files, uploads) {
  const session = new UploadSession(batch, files);
  showSession(session);
  session.start(uploads, null).catch((err) => showError(err, "Upload"));
}

export function setupSubmit() {
  store.on("pipelines", renderChoices);
  setupDropzone();
  $("#submit-form").addEventListener("submit", submitBatch);
  $("#clear-files").addEventListener("click", () => {
    clearFiles();
    $("#file-input").focus();
  });
  $("#prefix-input").addEventListener("input", updatePreview);
  $("#description-input").addEventListener("input", updatePreview);
  renderFiles();
}
