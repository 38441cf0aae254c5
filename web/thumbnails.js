// A batch's files as a grid of thumbnails: each tile shows the file's preview (loaded lazily by
// the browser as it scrolls into view), its name and status, and for a failed file its error.
// The grid is one tab stop: arrow keys, Home and End move between tiles (roving tabindex),
// Enter or Space opens the larger view.
//
// Tiles are keyed by job id and updated in place, so a refresh every few seconds neither rebuilds
// 1,000 tiles nor reloads a picture: a tile keeps the first preview URL it got (previews never
// change once a job is completed) and only takes a fresh one if that URL failed (expired).

import { badge, h } from "./dom.js";
import { errorLabel } from "./format.js";

export class ThumbGrid {
  /** onOpen(job) opens the larger view of a file. */
  constructor({ label, onOpen }) {
    this.onOpen = onOpen;
    this.tiles = new Map(); // job id -> {li, button, frame, img, job, key}
    this.order = []; // job ids in the order shown
    this.active = null; // the job id whose tile holds the tab stop
    this.el = h("ul", { class: "thumbs", "aria-label": label });
    this.el.addEventListener("keydown", (event) => this.onKey(event));
  }

  /** Show these jobs in this order; `statusOf(job)` may say "uploaded" for a file sent from this page. */
  update(jobs, statusOf = (job) => job.status) {
    const seen = new Set();
    let previous = null;
    for (const job of jobs) {
      seen.add(job.id);
      let tile = this.tiles.get(job.id);
      if (!tile) {
        tile = this.create(job);
        this.tiles.set(job.id, tile);
      }
      this.fill(tile, job, statusOf(job));
      // Keep DOM order equal to the jobs' order, moving only what is out of place.
      const expected = previous ? previous.nextSibling : this.el.firstChild;
      if (expected !== tile.li) this.el.insertBefore(tile.li, expected);
      previous = tile.li;
    }
    for (const [id, tile] of this.tiles) {
      if (!seen.has(id)) {
        tile.li.remove();
        this.tiles.delete(id);
      }
    }
    this.order = jobs.map((j) => j.id);
    if (!this.tiles.has(this.active)) this.active = this.order[0] ?? null;
    for (const [id, tile] of this.tiles) tile.button.tabIndex = id === this.active ? 0 : -1;
  }

  create(job) {
    const frame = h("span", { class: "thumb-frame" });
    const name = h("span", { class: "thumb-name" });
    const status = h("span", { class: "thumb-status" });
    const error = h("span", { class: "thumb-error" });
    const button = h("button", { type: "button", class: "thumb-button", tabindex: "-1" }, frame, name, status, error);
    button.addEventListener("click", () => {
      this.setActive(job.id);
      this.onOpen(this.tiles.get(job.id).job);
    });
    button.addEventListener("focus", () => this.setActive(job.id));
    const li = h("li", { class: "thumb", dataset: { jobId: job.id } }, button);
    return { li, button, frame, name, status, error, img: null, src: null, job, key: "" };
  }

  fill(tile, job, status) {
    tile.job = job;
    const key = JSON.stringify([job.file_name, status, job.error, Boolean(job.preview)]);
    if (tile.img && tile.failed && job.preview) {
      tile.failed = false; // the URL expired: take the fresh one
      tile.src = job.preview.url;
      tile.img.src = tile.src;
    }
    if (key === tile.key) return;
    tile.key = key;
    tile.li.dataset.status = status;
    tile.name.textContent = job.file_name;
    tile.name.title = job.file_name;
    tile.status.replaceChildren(badge(status));
    tile.error.replaceChildren(...(job.error ? [h("code", {}, job.error.code), " ", errorLabel(job.error.code)] : []));
    tile.error.hidden = !job.error;
    if (job.preview) {
      if (!tile.img) {
        tile.src = job.preview.url;
        tile.img = h("img", {
          src: tile.src, alt: "", loading: "lazy", decoding: "async",
          width: job.preview.width, height: job.preview.height,
        });
        tile.img.addEventListener("error", () => { tile.failed = true; });
        tile.frame.replaceChildren(tile.img);
      }
    } else {
      tile.img = null;
      tile.frame.replaceChildren(h("span", { class: "thumb-placeholder", "aria-hidden": "true" }, placeholder(status)));
    }
  }

  setActive(id) {
    if (this.active === id) return;
    const old = this.tiles.get(this.active);
    if (old) old.button.tabIndex = -1;
    this.active = id;
    const tile = this.tiles.get(id);
    if (tile) tile.button.tabIndex = 0;
  }

  focus(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    this.setActive(id);
    tile.button.focus();
  }

  /** The tiles in one row, as laid out now (the grid wraps with the width). */
  columns() {
    const items = [...this.el.children];
    if (items.length < 2) return 1;
    const top = items[0].offsetTop;
    const n = items.findIndex((li) => li.offsetTop !== top);
    return n === -1 ? items.length : n;
  }

  onKey(event) {
    const index = this.order.indexOf(this.active);
    if (index === -1) return;
    const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: this.columns(), ArrowUp: -this.columns() };
    let next = null;
    if (event.key in steps) next = index + steps[event.key];
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = this.order.length - 1;
    else return;
    event.preventDefault();
    next = Math.max(0, Math.min(this.order.length - 1, next));
    this.focus(this.order[next]);
  }
}

function placeholder(status) {
  return {
    awaiting_upload: "Waiting for upload",
    uploaded: "Uploaded",
    processing: "Processing…",
    failed: "Failed",
    cancelled: "Cancelled",
    completed: "No preview",
  }[status] || status;
}
