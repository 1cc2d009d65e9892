// Forms post JSON to the library's routes (the contract takes JSON bodies); the browser
// sends Origin with fetch, so the CSRF check sees a same-origin request.
"use strict";

function localNext() {
  const next = new URLSearchParams(location.search).get("next");
  // Only a path on this site: not //host, not /\host, no scheme.
  if (next && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\")) {
    return next;
  }
  return null;
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
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
  const box = form.querySelector("#form-error");
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
        const { response, problem } = await postJson(form.dataset.endpoint, body);
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

  for (const button of document.querySelectorAll("[data-switch-org]")) {
    button.addEventListener("click", async () => {
      const { response } = await postJson("/auth/active-org", { org_id: button.dataset.switchOrg });
      if (response.ok) location.reload();
    });
  }
});
