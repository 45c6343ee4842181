// passkey.js: the one script of the pages (issue 16 item 3), served from
// this server under the CSP script-src 'self'. A form with
// data-ceremony="create" (the account page's "Add a passkey") or "get"
// (the sign-in pages' "Sign in with a passkey") stays hidden unless the
// browser has WebAuthn. On submit it POSTs the form's csrf_token to
// data-options, hands the JSON options to navigator.credentials, puts
// the answer (JSON) into the form's credential field and submits the
// form: the server's answer is an ordinary page.
"use strict";
(function () {
	function toBuf(s) {
		s = s.replace(/-/g, "+").replace(/_/g, "/");
		while (s.length % 4) {
			s += "=";
		}
		var bin = atob(s), b = new Uint8Array(bin.length);
		for (var i = 0; i < bin.length; i++) {
			b[i] = bin.charCodeAt(i);
		}
		return b.buffer;
	}
	function toB64(buf) {
		var b = new Uint8Array(buf), s = "";
		for (var i = 0; i < b.length; i++) {
			s += String.fromCharCode(b[i]);
		}
		return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
	}
	function ids(list) {
		(list || []).forEach(function (c) { c.id = toBuf(c.id); });
	}
	function creation(o) {
		var p = o.publicKey;
		p.challenge = toBuf(p.challenge);
		p.user.id = toBuf(p.user.id);
		ids(p.excludeCredentials);
		return { publicKey: p };
	}
	function request(o) {
		var p = o.publicKey;
		p.challenge = toBuf(p.challenge);
		ids(p.allowCredentials);
		return { publicKey: p };
	}
	function encode(cred) {
		var r = cred.response;
		var out = {
			id: cred.id,
			rawId: toB64(cred.rawId),
			type: cred.type,
			clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
			response: { clientDataJSON: toB64(r.clientDataJSON) }
		};
		if (cred.authenticatorAttachment) {
			out.authenticatorAttachment = cred.authenticatorAttachment;
		}
		if (r.attestationObject) {
			out.response.attestationObject = toB64(r.attestationObject);
			if (r.getTransports) {
				out.response.transports = r.getTransports();
			}
		}
		if (r.authenticatorData) {
			out.response.authenticatorData = toB64(r.authenticatorData);
			out.response.signature = toB64(r.signature);
			if (r.userHandle) {
				out.response.userHandle = toB64(r.userHandle);
			}
		}
		return JSON.stringify(out);
	}
	if (!window.PublicKeyCredential || !navigator.credentials) {
		return;
	}
	document.querySelectorAll("form[data-ceremony]").forEach(function (form) {
		var err = form.querySelector(".passkey-error");
		form.hidden = false;
		form.addEventListener("submit", function (ev) {
			ev.preventDefault();
			err.hidden = true;
			var body = new URLSearchParams();
			body.set("csrf_token", form.elements.csrf_token.value);
			fetch(form.getAttribute("data-options"), { method: "POST", body: body, credentials: "same-origin" })
				.then(function (resp) {
					if (!resp.ok) {
						throw new Error("The server could not start the passkey request (HTTP " + resp.status + "). Reload the page and try again.");
					}
					return resp.json();
				})
				.then(function (o) {
					return form.getAttribute("data-ceremony") === "create" ?
						navigator.credentials.create(creation(o)) : navigator.credentials.get(request(o));
				})
				.then(function (cred) {
					form.elements.credential.value = encode(cred);
					form.submit();
				})
				.catch(function (e) {
					err.textContent = e && e.name === "NotAllowedError" ?
						"The passkey request was cancelled or timed out." : (e && e.message) || String(e);
					err.hidden = false;
				});
		});
	});
})();
