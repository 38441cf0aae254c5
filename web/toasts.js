// Notifications (aria-live toasts), form errors and the confirmation dialog.

import { ApiError } from "./api.js";
import { $, h } from "./dom.js";

export function toast(message, { kind = "info", timeout = 6000, action } = {}) {
  const region = kind === "error" ? $("#toast-alert") : $("#toast-status");
  const close = () => item.remove();
  const item = h(
    "div",
    { class: `toast toast-${kind}` },
    h("p", {}, message),
    action ? h("button", { type: "button", class: "btn btn-small btn-secondary", onclick: () => { close(); action.run(); } }, action.label) : null,
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss notification", onclick: close }, "×"),
  );
  region.append(item);
  if (timeout) setTimeout(close, kind === "error" ? timeout * 2 : timeout);
  return item;
}

export function showError(err, context) {
  if (err && err.name === "AbortError") return;
  const message = err instanceof ApiError ? err.message : String(err?.message || err);
  toast(context ? `${context}: ${message}` : message, { kind: "error" });
}

export function setFormError(el, err) {
  el.textContent = "";
  if (!err) return;
  el.append(err instanceof ApiError ? err.message : String(err.message || err));
}

export function confirmDialog({ title, body, confirmLabel = "Delete" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-body", dialog).textContent = body;
  $("#confirm-ok", dialog).textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "confirm");
        if (opener && opener.isConnected) opener.focus();
      },
      { once: true },
    );
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("#confirm-cancel", dialog).focus();
  });
}
