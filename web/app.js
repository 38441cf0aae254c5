// imgbatch web UI: sign in, submit batches (presigned S3 uploads), follow them, act on them,
// and manage pipelines. Plain ES modules, no build step, no third-party code.
//
// This module only wires the screens together; each lives in its own module:
//   views.js, signin.js   which screen shows; the sign-in form
//   stats.js              statistics cards and status chips
//   submit.js, uploads.js the "New batch" form (sniff.js, naming.js) and its upload panels
//   resume.js             after a reload: offer to continue interrupted uploads (same files again)
//   batches.js, detail.js the batch list with live refresh; a batch's files and actions
//   thumbnails.js         a batch's files as a keyboard-navigable grid of lazy-loaded previews
//   viewer.js             the larger view of one file: each pipeline's output, a download each
//   pipelines.js          the Pipelines screen
//   webhooks.js           the Webhooks screen (create, delivery log, ping, redeliver)
//   integrations.js       a batch's integration fields on its detail (PATCH)
//   store.js              the state several screens share, and their notifications
//   api.js, uploader.js   the HTTP API and S3 uploads (presigned POSTs, and in parts for large files)
//   dom.js, format.js, toasts.js   helpers

import { auth, onUnauthorized } from "./api.js";
import { invalidateList, listBusy, reloadBatches, setupBatches } from "./batches.js";
import { setupDetail } from "./detail.js";
import { $, debounce } from "./dom.js";
import { loadPipelines, setupPipelines } from "./pipelines.js";
import { setupSignIn, showOwner, showSignIn } from "./signin.js";
import { refreshStats } from "./stats.js";
import { store } from "./store.js";
import { offerResume } from "./resume.js";
import { resumeSession, setupSubmit } from "./submit.js";
import { showError } from "./toasts.js";
import { dropSessions, uploadsInFlight } from "./uploads.js";
import { currentView, showView } from "./views.js";
import { loadWebhooks, setupWebhooks } from "./webhooks.js";

async function enterApp() {
  showView();
  await Promise.all([loadPipelines(), reloadBatches(), refreshStats(), showOwner(),
    currentView() === "webhooks" ? loadWebhooks() : null,
    offerResume(resumeSession).catch((err) => showError(err, "Continuing uploads"))]);
}

function signOut(message) {
  dropSessions();
  auth.token = "";
  store.emit("signed-out"); // the list stops following and empties, downloads are dropped
  showView();
  showSignIn(message);
}

function setupFilters() {
  const reload = () => {
    reloadBatches();
    refreshStats();
  };
  const debounced = debounce(reload, 300);
  const typed = () => {
    invalidateList(); // answers to earlier queries no longer count
    listBusy(true);
    debounced();
  };
  $("#filter-search").addEventListener("input", typed);
  $("#filter-prefix").addEventListener("input", typed);
  for (const id of ["#filter-status", "#sort-by", "#sort-order"]) $(id).addEventListener("change", reload);
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    reload();
  });
  $("#refresh-list").addEventListener("click", reload);
}

function init() {
  onUnauthorized(() => signOut("Your API token was rejected. Sign in again."));
  setupSignIn(enterApp);
  $("#sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => {
    showView();
    if (currentView() === "pipelines") loadPipelines();
    if (currentView() === "webhooks") loadWebhooks();
  });
  store.on("stats-stale", refreshStats);

  setupSubmit();
  setupBatches();
  setupDetail();
  setupFilters();
  setupPipelines();
  setupWebhooks();

  window.addEventListener("beforeunload", (e) => {
    if (uploadsInFlight()) {
      e.preventDefault();
      e.returnValue = "";
    }
  });

  showView();
  if (auth.current()) {
    enterApp().catch((err) => showError(err));
  } else {
    $("#signin-token").focus();
  }
}

init();
