// Passkeys in the browser: the half of each WebAuthn ceremony that only the browser can do.
// The server starts a ceremony (options + an id it keeps the state under), this script asks
// the authenticator through navigator.credentials and sends the answer back. Binary fields
// travel as base64url on both sides. Without JavaScript, or without WebAuthn, the pages say
// so and everything else still works.
"use strict";
(function () {
  function fromB64url(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: fromB64url(c.id) });
    });
  }

  async function post(url, body, csrf) {
    var headers = { "content-type": "application/json", accept: "application/json" };
    if (csrf) headers["x-csrf-token"] = csrf;
    var res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: headers,
      body: body === undefined ? "{}" : JSON.stringify(body),
    });
    var data = {};
    try {
      data = await res.json();
    } catch (e) {
      data = {};
    }
    if (!res.ok) {
      var message = (data.error && data.error.message) || "The request failed (" + res.status + ").";
      throw new Error(message);
    }
    return data;
  }

  function say(status, text) {
    if (status) status.textContent = text;
  }

  // Registration, on the account page.
  async function register(box) {
    var status = box.querySelector("[data-passkey-status]");
    var csrf = box.getAttribute("data-csrf");
    var nameInput = box.querySelector("input[name=passkey_name]");
    say(status, "Waiting for your passkey…");
    var started = await post("/admin/account/passkeys/register/start", undefined, csrf);
    var pk = started.options.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    pk.user.id = fromB64url(pk.user.id);
    pk.excludeCredentials = withIds(pk.excludeCredentials);
    var cred = await navigator.credentials.create({ publicKey: pk });
    var body = {
      ceremony: started.ceremony,
      name: nameInput ? nameInput.value : "",
      credential: {
        id: cred.id,
        rawId: toB64url(cred.rawId),
        type: cred.type,
        response: {
          attestationObject: toB64url(cred.response.attestationObject),
          clientDataJSON: toB64url(cred.response.clientDataJSON),
        },
        // The server reads nothing from the client's extension outputs.
        extensions: {},
      },
    };
    var done = await post("/admin/account/passkeys/register/finish", body, csrf);
    say(status, "Passkey added.");
    window.location.assign(done.redirect || "/admin/account");
  }

  // The passwordless sign-in, on the sign-in page.
  async function signIn(box) {
    var status = box.querySelector("[data-passkey-status]");
    say(status, "Waiting for your passkey…");
    // The same ceremony serves the sign-in page (a passkey alone) and the second step after a
    // password (the box names its own endpoints).
    var start = box.getAttribute("data-start") || "/admin/login/passkey/start";
    var finish = box.getAttribute("data-finish") || "/admin/login/passkey/finish";
    var started = await post(start);
    var pk = started.options.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    pk.allowCredentials = withIds(pk.allowCredentials);
    var cred = await navigator.credentials.get({ publicKey: pk });
    var r = cred.response;
    var body = {
      ceremony: started.ceremony,
      next: box.getAttribute("data-next") || "/admin",
      credential: {
        id: cred.id,
        rawId: toB64url(cred.rawId),
        type: cred.type,
        response: {
          authenticatorData: toB64url(r.authenticatorData),
          clientDataJSON: toB64url(r.clientDataJSON),
          signature: toB64url(r.signature),
          userHandle: r.userHandle ? toB64url(r.userHandle) : null,
        },
        extensions: {},
      },
    };
    var done = await post(finish, body);
    say(status, "Signed in.");
    window.location.assign(done.redirect || "/admin");
  }

  function wire(selector, action) {
    document.querySelectorAll(selector).forEach(function (box) {
      var button = box.querySelector("button[data-passkey-action]");
      var absent = box.querySelector("[data-passkey-nojs]");
      if (!window.PublicKeyCredential || !navigator.credentials) {
        if (absent) absent.textContent = "This browser does not support passkeys.";
        return;
      }
      if (absent) absent.hidden = true;
      box.querySelectorAll("[data-passkey-js]").forEach(function (el) {
        el.hidden = false;
      });
      button.addEventListener("click", function () {
        button.disabled = true;
        action(box)
          .catch(function (e) {
            var status = box.querySelector("[data-passkey-status]");
            say(status, e && e.name === "NotAllowedError"
              ? "The passkey request was cancelled or timed out."
              : (e && e.message) || "The passkey request failed.");
          })
          .finally(function () {
            button.disabled = false;
          });
      });
    });
  }

  wire("[data-passkey-register]", register);
  wire("[data-passkey-login]", signIn);
})();
