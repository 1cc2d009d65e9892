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
  // The organization's policy holds the caller back (not the policy route's own refusal to
  // require what the caller lacks, which its page explains).
  if (response.status === 403 && problem && problem.code === "mfa_required" && !url.endsWith("/mfa-policy")) {
    showMfaRequired();
  }
  return { response, problem };
}

// As sendJson, for the routes behind step-up: a 403 `reauthentication_required` opens the
// re-authentication dialog (password, authenticator code, recovery code or passkey) and,
// once it succeeds, sends the request again. Cancelling the dialog answers the 403.
async function callApi(method, url, body) {
  const first = await sendJson(method, url, body);
  if (first.response.status !== 403 || !first.problem || first.problem.code !== "reauthentication_required") {
    return first;
  }
  if (!(await reauthenticate())) return first;
  return sendJson(method, url, body);
}

// The message for a refused request: the problem's detail (or title) and its stable code.
function problemText(problem, status) {
  if (!problem) return `Request failed (${status}).`;
  const text = problem.detail || problem.title || `Request failed (${status})`;
  return problem.code ? `${text} [${problem.code}]` : text;
}

function showMessage(box, text) {
  if (!box) return;
  box.textContent = text;
  box.hidden = false;
}

function showError(form, problem, status) {
  showMessage(form.querySelector("#form-error, [data-error]"), problemText(problem, status));
}

// The organization's MFA policy refused the request: say what to do (base.html's notice).
function showMfaRequired() {
  const notice = document.getElementById("mfa-required");
  if (notice) notice.hidden = false;
}

// ---- Step-up: the re-authentication dialog of base.html ----

let pendingReauth = null;

// Opens the dialog; resolves true once POST /auth/reauthenticate (or a passkey) succeeded,
// false when the dialog is closed without.
function reauthenticate() {
  const dialog = document.getElementById("reauth-dialog");
  if (!dialog) return Promise.resolve(false);
  if (pendingReauth) return pendingReauth;
  pendingReauth = new Promise((resolve) => {
    const form = document.getElementById("reauth-form");
    const error = document.getElementById("reauth-error");
    const passkey = document.getElementById("reauth-passkey");
    const cancel = document.getElementById("reauth-cancel");
    form.reset();
    error.hidden = true;
    const finish = (ok) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      if (passkey) passkey.removeEventListener("click", onPasskey);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      pendingReauth = null;
      resolve(ok);
    };
    const onSubmit = async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const body = {};
      for (const field of ["password", "code", "recovery_code"]) {
        const value = String(data.get(field) || "").trim();
        if (value) body[field] = field === "password" ? String(data.get(field)) : value;
      }
      if (Object.keys(body).length !== 1) {
        showMessage(error, "Fill in one of the fields: your password, a code from your authenticator app, or a recovery code.");
        return;
      }
      const { response, problem } = await sendJson("POST", "/auth/reauthenticate", body);
      if (response.ok) finish(true);
      else showMessage(error, problemText(problem, response.status));
    };
    const onPasskey = async () => {
      try {
        await passkeyAuthenticate();
        finish(true);
      } catch (failure) {
        showMessage(error, failureText(failure));
      }
    };
    const onCancel = (event) => {
      if (event) event.preventDefault();
      finish(false);
    };
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    if (passkey) passkey.addEventListener("click", onPasskey);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    const first = form.querySelector("input");
    if (first) first.focus();
  });
  return pendingReauth;
}

// ---- WebAuthn: the JSON of webauthn-rs <-> the browser's binary fields ----

function base64urlToBytes(text) {
  const base64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function bytesToBase64url(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function credentialDescriptors(list) {
  return (list || []).map((c) => ({ ...c, id: base64urlToBytes(c.id) }));
}

// webauthn-rs's CreationChallengeResponse -> the argument of navigator.credentials.create().
function creationOptions(options) {
  const publicKey = { ...options.publicKey };
  publicKey.challenge = base64urlToBytes(publicKey.challenge);
  publicKey.user = { ...publicKey.user, id: base64urlToBytes(publicKey.user.id) };
  if (publicKey.excludeCredentials) publicKey.excludeCredentials = credentialDescriptors(publicKey.excludeCredentials);
  return { publicKey };
}

// webauthn-rs's RequestChallengeResponse -> the argument of navigator.credentials.get()
// (a modal request: the button was pressed, so no conditional mediation).
function requestOptions(options) {
  const publicKey = { ...options.publicKey };
  publicKey.challenge = base64urlToBytes(publicKey.challenge);
  if (publicKey.allowCredentials) publicKey.allowCredentials = credentialDescriptors(publicKey.allowCredentials);
  return { publicKey };
}

// A new credential -> webauthn-rs's RegisterPublicKeyCredential.
function registrationJson(credential) {
  const response = {
    attestationObject: bytesToBase64url(credential.response.attestationObject),
    clientDataJSON: bytesToBase64url(credential.response.clientDataJSON),
  };
  if (typeof credential.response.getTransports === "function") {
    response.transports = credential.response.getTransports();
  }
  return { id: credential.id, rawId: bytesToBase64url(credential.rawId), type: credential.type, response, extensions: {} };
}

// An assertion -> webauthn-rs's PublicKeyCredential.
function assertionJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: bytesToBase64url(credential.rawId),
    type: credential.type,
    response: {
      authenticatorData: bytesToBase64url(r.authenticatorData),
      clientDataJSON: bytesToBase64url(r.clientDataJSON),
      signature: bytesToBase64url(r.signature),
      userHandle: r.userHandle && r.userHandle.byteLength ? bytesToBase64url(r.userHandle) : null,
    },
    extensions: {},
  };
}

// A refused request, as an Error carrying the problem (for failureText).
function apiFailure(problem, status) {
  const error = new Error(problemText(problem, status));
  error.problem = problem;
  return error;
}

// What to show for a failed ceremony: the server's problem, or the browser's refusal.
function failureText(failure) {
  if (failure && failure.problem !== undefined) return failure.message;
  if (failure && failure.name === "NotAllowedError") return "The passkey request was cancelled or timed out. [passkey_cancelled]";
  if (failure && failure.name === "InvalidStateError") return "This authenticator already holds a passkey for this account. [passkey_exists]";
  if (typeof window !== "undefined" && !window.PublicKeyCredential) return "This browser does not support passkeys. [passkey_unsupported]";
  return `${(failure && failure.message) || failure} [passkey_failed]`;
}

// Registers a passkey named `name` for the signed-in user: options (behind step-up), the
// browser's ceremony, the answer. Resolves the passkey's view; throws on refusal.
async function passkeyRegister(name) {
  const started = await callApi("POST", "/auth/passkeys/register/options", {});
  if (!started.response.ok) throw apiFailure(started.problem, started.response.status);
  const { ceremony, options } = await started.response.json();
  const credential = await navigator.credentials.create(creationOptions(options));
  const body = { ceremony, credential: registrationJson(credential) };
  if (name) body.name = name;
  const { response, problem } = await sendJson("POST", "/auth/passkeys/register", body);
  if (!response.ok) throw apiFailure(problem, response.status);
  return response.json();
}

// Authenticates with a passkey: a passwordless sign-in, the second step of a pending
// sign-in, or a re-authentication (the server tells them apart by the cookies). Resolves the
// server's answer; throws on refusal.
async function passkeyAuthenticate() {
  const started = await sendJson("POST", "/auth/passkeys/authenticate/options", {});
  if (!started.response.ok) throw apiFailure(started.problem, started.response.status);
  const { ceremony, options } = await started.response.json();
  const credential = await navigator.credentials.get(requestOptions(options));
  const { response, problem } = await sendJson("POST", "/auth/passkeys/authenticate", {
    ceremony,
    credential: assertionJson(credential),
  });
  if (!response.ok) throw apiFailure(problem, response.status);
  return response.json();
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
        const { response, problem } = await callApi(form.dataset.method || "POST", form.dataset.endpoint, body);
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
      const { response, problem } = await callApi("POST", "/api/tokens", body);
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
        const { response, problem } = await callApi(button.dataset.method || "POST", button.dataset.url);
        if (!response.ok) {
          showMessage(document.getElementById("action-error"), problemText(problem, response.status));
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
