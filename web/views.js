// Which screen shows: sign in, batches, pipelines or webhooks (from the token and the URL hash).

import { auth } from "./api.js";
import { $ } from "./dom.js";

export function currentView() {
  const hash = location.hash.replace("#", "");
  return ["pipelines", "webhooks"].includes(hash) ? hash : "batches";
}

export function showView() {
  const signedIn = Boolean(auth.current());
  for (const el of document.querySelectorAll("[data-signed-in]")) el.hidden = !signedIn;
  $("#view-signin").hidden = signedIn;
  const view = currentView();
  $("#view-batches").hidden = !signedIn || view !== "batches";
  $("#view-pipelines").hidden = !signedIn || view !== "pipelines";
  $("#view-webhooks").hidden = !signedIn || view !== "webhooks";
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  const titles = { batches: "Batches", pipelines: "Pipelines", webhooks: "Webhooks" };
  document.title = signedIn ? `${titles[view]} · imgbatch` : "Sign in · imgbatch";
}
