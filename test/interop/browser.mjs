// The pieces the headless TypeScript SDK clients share (mcp_ts_client.mjs,
// mcp_ts_register.mjs, gateway_ts_client.mjs): the step report and the
// scripted browser that signs in and consents.

// ---------------------------------------------------------------------------
// The report: each step is printed as a JSON line "STEP {...}"; the last
// line is "RESULT {...}".

export const steps = [];

export function step(name, ok, detail = {}) {
  const s = { name, ok, ...detail };
  steps.push(s);
  console.log('STEP ' + JSON.stringify(s));
  return s;
}

export function finish(code) {
  console.log('RESULT ' + JSON.stringify({ ok: code === 0, steps }));
  process.exit(code);
}

export function fail(name, err) {
  step(name, false, { error: String((err && err.stack) || err) });
  finish(1);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// The scripted browser.

export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (m, e) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos') return "'";
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    return String.fromCodePoint(parseInt(l.slice(1), 10));
  });
}

function attrs(tag) {
  const out = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  const inner = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  while ((m = re.exec(inner))) {
    out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

// forms returns the page's forms by id: {action, values}.
function forms(html) {
  const out = {};
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let f;
  while ((f = formRe.exec(html))) {
    const open = f[0].match(/^<form\b[^>]*>/i)[0];
    const a = attrs(open);
    const values = new URLSearchParams();
    const inputRe = /<input\b[^>]*>/gi;
    let i;
    while ((i = inputRe.exec(f[1]))) {
      const ia = attrs(i[0]);
      const type = (ia.type || 'text').toLowerCase();
      if (ia.name && type !== 'submit' && type !== 'button') values.set(ia.name, ia.value ?? '');
    }
    if (a.id) out[a.id] = { action: a.action ?? '', values };
  }
  return out;
}

// text is the visible text of an HTML fragment.
export const text = (html) => decodeEntities(html.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim();

// playBrowser fetches authorizeURL with a cookie jar, signs in as
// username/password, allows consent, and stops at the redirect to
// redirectURI. It returns that URL (back), the HTML of every consent page
// it allowed (consentPages), and the requests it made (trail).
export async function playBrowser(authorizeURL, { redirectURI, username, password }) {
  const jar = new Map();
  let method = 'GET';
  let target = authorizeURL;
  let body;
  let loggedIn = false;
  const trail = [];
  const consentPages = [];
  for (let n = 0; n < 20; n++) {
    const headers = { accept: 'text/html' };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const resp = await fetch(target, { method, headers, body, redirect: 'manual' });
    for (const c of resp.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    const loc = resp.headers.get('location');
    trail.push(`${method} ${target} -> ${resp.status} ${loc ?? ''}`);
    if (resp.status >= 300 && resp.status < 400) {
      const next = new URL(loc, target).toString();
      await resp.arrayBuffer();
      if (next.startsWith(redirectURI)) {
        return { back: new URL(next), consentPages, trail };
      }
      method = 'GET';
      target = next;
      body = undefined;
      continue;
    }
    const html = await resp.text();
    if (resp.status !== 200) throw new Error(`${method} ${target}: ${resp.status}: ${text(html).slice(0, 400)}\n${trail.join('\n')}`);
    const fs = forms(html);
    let f;
    if (fs['login-form']) {
      if (loggedIn) throw new Error('login form shown twice\n' + trail.join('\n'));
      loggedIn = true;
      f = fs['login-form'];
      f.values.set('username', username);
      f.values.set('password', password);
    } else if (fs['consent-form']) {
      consentPages.push(html);
      f = fs['consent-form'];
      f.values.set('decision', 'allow');
    } else {
      throw new Error(`no login or consent form at ${target}: ${text(html).slice(0, 400)}\n${trail.join('\n')}`);
    }
    method = 'POST';
    target = new URL(f.action, target).toString();
    body = f.values.toString();
  }
  throw new Error('no redirect after 20 steps\n' + trail.join('\n'));
}

// ---------------------------------------------------------------------------
// The OAuth client provider the SDK is given: a public client, everything
// kept in memory and stored exactly as the SDK hands it over, with a
// record of what the SDK did (savedClients, savedTokens, authorizeURLs,
// codes, consentPages).

export class MemoryProvider {
  // client: the client information to start with (undefined: the SDK
  // registers); clientName: the client_name of its metadata;
  // metadataURL: a client ID metadata document URL (CIMD); abandon: the
  // user never signs in (redirectToAuthorization records the URL only);
  // reregister: drop the client information when the SDK invalidates it
  // (it then registers again), which otherwise is kept.
  constructor({ redirectURI, username, password, clientName, client, metadataURL, abandon = false, reregister = false }) {
    this._login = { redirectURI, username, password };
    this._clientName = clientName;
    this._client = client;
    this._metadataURL = metadataURL;
    this._abandon = abandon;
    this._reregister = reregister;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    // hideRefreshToken makes tokens() leave out the refresh token, so the
    // SDK re-authorizes where it would refresh.
    this.hideRefreshToken = false;
    this.savedClients = [];
    this.savedTokens = [];
    this.authorizeURLs = [];
    this.codes = [];
    this.consentPages = [];
  }
  get redirectUrl() { return this._login.redirectURI; }
  // Read by the SDK to decide on a URL-based client id.
  get clientMetadataUrl() { return this._metadataURL; }
  get clientMetadata() {
    return {
      client_name: this._clientName,
      redirect_uris: [this._login.redirectURI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { this._state = crypto.randomUUID(); return this._state; }
  clientInformation() { return this._client; }
  saveClientInformation(info) {
    this._client = info;
    this.savedClients.push(info);
  }
  tokens() {
    if (this._tokens && this.hideRefreshToken) {
      const { refresh_token, ...rest } = this._tokens;
      return rest;
    }
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.savedTokens.push({ at: Date.now(), scope: tokens.scope, refresh: !!tokens.refresh_token });
  }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  discoveryState() { return this._discovery; }
  saveDiscoveryState(s) { this._discovery = s; }
  invalidateCredentials(scope) {
    if ((scope === 'all' || scope === 'client') && this._reregister) this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }
  async redirectToAuthorization(url) {
    this.authorizeURLs.push(url.toString());
    if (this._abandon) return;
    const { back, consentPages } = await playBrowser(url.toString(), this._login);
    this.consentPages.push(...consentPages);
    const q = back.searchParams;
    if (q.get('error')) throw new Error(`authorization error ${q.get('error')}: ${q.get('error_description')}`);
    if (q.get('state') !== this._state) throw new Error(`state ${q.get('state')}, want ${this._state}`);
    if (!q.get('iss')) throw new Error('no iss in the authorization response (RFC 9207)');
    this.codes.push(q.get('code'));
  }
}
