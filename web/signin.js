// The sign-in form and the "Signed in as" label.

import { auth, request } from "./api.js";
import { $ } from "./dom.js";

/** Wire the form; `onSignedIn` runs once a token has been accepted and stored. */
export function setupSignIn(onSignedIn) {
  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("#signin-token");
    const error = $("#signin-error");
    const token = input.value.trim();
    error.textContent = "";
    if (!token) {
      error.textContent = "Enter your API token.";
      input.focus();
      return;
    }
    const button = $("#signin-submit");
    button.disabled = true;
    button.textContent = "Checking…";
    try {
      await request("GET", "batches/stats", { token });
      auth.token = token;
      input.value = "";
      await onSignedIn();
      $("#main").focus();
    } catch (err) {
      error.textContent =
        err.status === 401 ? `That token was not accepted: ${err.message}` : `Could not sign in: ${err.message}`;
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  });
}

export function showSignIn(message) {
  $("#signin-error").textContent = message || "";
  $("#signin-token").focus();
}

export async function showOwner() {
  try {
    const { data } = await request("GET", "me");
    $("#session-label").textContent = `Signed in as ${data.owner}`;
  } catch {
    $("#session-label").textContent = "Signed in";
  }
}
