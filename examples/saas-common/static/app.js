// Forms post JSON to the library's routes (the contract takes JSON bodies); the browser
// sends Origin with fetch, so the CSRF check sees a same-origin request.
"use strict";

// `next` if it is a path on this site, else null: the server's rule (keystead's
// `local_path`), exactly. It starts with one "/" (not "//" or "/\\", protocol-relative to
// browsers), has no backslash and no control character (C0, DEL, C1: browsers drop tabs and
// newlines, so "/\t/evil.example" would become "//evil.example"), and is at most 2048 bytes
// of UTF-8. saas-common's tests run this function against the Rust one.
function localPath(next) {
  if (typeof next !== "string") return null;
  if (!next.startsWith("/") || next.startsWith("//") || next.includes("\\")) return null;
  for (const ch of next) {
    const code = ch.codePointAt(0);
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) return null;
  }
  if (new TextEncoder().encode(next).length > 2048) return null;
  return next;
}

function localNext() {
  return localPath(new URLSearchParams(location.search).get("next"));
}

async function postJson(url, body) {
  return sendJson("POST", url, body);
}

async function sendJson(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json", "accept": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let problem = null;
  if (!response.ok) {
    try { problem = await response.json(); } catch (_) { problem = null; }
  }
  return { response, problem };
}

function showError(form, problem, status) {
  const box = form.querySelector("#form-error, [data-error]");
  if (!box) return;
  box.textContent = (problem && (problem.detail || problem.title)) || `Request failed (${status}).`;
  box.hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-endpoint]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      for (const [key, value] of new FormData(form).entries()) {
        if (value !== "") body[key] = value;
      }
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      try {
        const { response, problem } = await sendJson(form.dataset.method || "POST", form.dataset.endpoint, body);
        if (!response.ok) {
          showError(form, problem, response.status);
          return;
        }
        if (form.dataset.done !== undefined) {
          const done = form.querySelector("#form-done");
          if (done) { done.textContent = form.dataset.done; done.hidden = false; }
        } else if (form.dataset.reload !== undefined) {
          location.reload();
        } else {
          location.assign(localNext() || form.dataset.redirect || "/dashboard");
        }
      } finally {
        if (button) button.disabled = false;
      }
    });
  }

  const signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("click", async () => {
      await postJson("/auth/sign-out");
      location.assign("/sign-in");
    });
  }

  const tokenForm = document.getElementById("token-form");
  if (tokenForm) {
    tokenForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(tokenForm);
      const body = {
        name: data.get("name"),
        scopes: data.getAll("scopes"),
        expires_in_days: Number(data.get("expires_in_days")) || undefined,
      };
      const { response, problem } = await postJson("/api/tokens", body);
      if (!response.ok) {
        showError(tokenForm, problem, response.status);
        return;
      }
      const created = await response.json();
      document.getElementById("new-token-value").textContent = created.token;
      document.getElementById("new-token").hidden = false;
      tokenForm.reset();
    });
  }

  for (const button of document.querySelectorAll("[data-revoke-token]")) {
    button.addEventListener("click", async () => {
      const response = await fetch(`/api/tokens/${button.dataset.revokeToken}`, {
        method: "DELETE",
        credentials: "same-origin",
      });
      if (response.ok) location.reload();
    });
  }

  // Buttons that send one request without a body (remove a member, leave, revoke an invitation),
  // then reload or go to data-redirect; a refusal shows in #action-error.
  for (const button of document.querySelectorAll("button[data-url]")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const { response, problem } = await sendJson(button.dataset.method || "POST", button.dataset.url);
        if (!response.ok) {
          const box = document.getElementById("action-error");
          if (box) {
            box.textContent = (problem && (problem.detail || problem.title)) || `Request failed (${response.status}).`;
            box.hidden = false;
          }
          return;
        }
        if (button.dataset.redirect) location.assign(button.dataset.redirect);
        else location.reload();
      } finally {
        button.disabled = false;
      }
    });
  }

  for (const button of document.querySelectorAll("[data-switch-org]")) {
    button.addEventListener("click", async () => {
      const { response } = await postJson("/auth/active-org", { org_id: button.dataset.switchOrg });
      if (response.ok) location.reload();
    });
  }
});
