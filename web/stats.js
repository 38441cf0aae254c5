// The statistics cards and the per-status chips (a chip filters the list by its status).

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { STATUS_ORDER, statusLabel } from "./format.js";
import { store } from "./store.js";
import { showError } from "./toasts.js";

let seq = 0;

export async function refreshStats() {
  const mine = ++seq;
  let stats;
  try {
    stats = await api.stats();
  } catch (err) {
    if (err.status !== 401 && mine === seq) showError(err, "Could not load statistics");
    return;
  }
  if (mine !== seq) return; // a newer answer is on its way
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
              store.emit("list-stale");
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
