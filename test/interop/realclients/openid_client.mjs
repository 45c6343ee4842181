// openid-client 6.8.9 (and its oauth4webapi) as a strict OAuth 2.1 client
// of `gatehouse dev`'s demo: TestRealClients/openid-client runs it
// (test/interop/realclients_openid_test.go).
//
//   node openid_client.mjs ISSUER MCP_URL REDIRECT_URI EXPIRY_WAIT_MS
//
// Each step is printed as "STEP {json}"; an authorization the user must
// complete is printed as "AUTHORIZE <url>", and the test answers with the
// URL the browser was redirected to, one line on standard input. The last
// line is "RESULT {json}".

import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { createInterface } from 'node:readline';

const [issuer, mcpURL, redirectURI, expiryWaitMs] = process.argv.slice(2);

const steps = [];
function step(name, detail = {}) {
  const s = { name, ok: true, ...detail };
  steps.push(s);
  console.log('STEP ' + JSON.stringify(s));
}
function finish(ok, error) {
  if (!ok) {
    const cause = error?.cause?.message ? ` (cause: ${error.cause.message})` : '';
    console.log('STEP ' + JSON.stringify({ name: 'error', ok: false, error: String((error && error.stack) || error) + cause }));
  }
  console.log('RESULT ' + JSON.stringify({ ok, steps }));
  process.exit(ok ? 0 : 1);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Answers from the test, one line each.
const answers = [];
const waiting = [];
createInterface({ input: process.stdin }).on('line', (line) => {
  const w = waiting.shift();
  if (w) w(line.trim());
  else answers.push(line.trim());
});
function nextAnswer() {
  if (answers.length) return Promise.resolve(answers.shift());
  return new Promise((r) => waiting.push(r));
}

// expectRefusal runs f, which must throw an error whose message (or its
// cause's) matches want; it returns the messages.
async function expectRefusal(what, want, f) {
  try {
    await f();
  } catch (e) {
    const msg = [e.message, e.cause?.message].filter(Boolean).join(': ');
    if (!want.test(msg)) throw new Error(`${what} was refused for another reason than ${want}: ${msg}`);
    return msg;
  }
  throw new Error(`${what} was accepted, want it refused`);
}

// mcp posts one JSON-RPC message to the demo with a bearer token and
// returns {status, challenge, body}.
let sessionID;
let nextID = 1;
async function mcp(config, accessToken, method, params) {
  const msg = { jsonrpc: '2.0', method, ...(params && { params }) };
  if (!method.startsWith('notifications/')) msg.id = nextID++;
  const headers = new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' });
  if (sessionID) headers.set('mcp-session-id', sessionID);
  let resp;
  try {
    resp = await client.fetchProtectedResource(config, accessToken, new URL(mcpURL), 'POST', JSON.stringify(msg), headers);
  } catch (e) {
    // A 401 or 403 with a WWW-Authenticate challenge is thrown; the test
    // wants to read the challenge.
    if (!(e instanceof oauth.WWWAuthenticateChallengeError)) throw e;
    return { status: e.response.status, challenge: e.response.headers.get('www-authenticate') || '', body: undefined };
  }
  if (resp.headers.get('mcp-session-id')) sessionID = resp.headers.get('mcp-session-id');
  const text = await resp.text();
  let body;
  if ((resp.headers.get('content-type') || '').startsWith('text/event-stream')) {
    const data = text.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
    body = data.length ? JSON.parse(data[data.length - 1]) : undefined;
  } else if (text) {
    try { body = JSON.parse(text); } catch { body = text; }
  }
  return { status: resp.status, challenge: resp.headers.get('www-authenticate') || '', body };
}

// authorize runs one authorization-code flow with PKCE for scope; the
// callback is checked strictly (state, and the RFC 9207 iss).
async function authorize(config, scope, forgeries) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectURI,
    scope,
    resource: mcpURL,
    state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  console.log('AUTHORIZE ' + url.href);
  const callback = new URL(await nextAnswer());
  if (forgeries) await forgeries(callback, verifier, state);
  return client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: mcpURL });
}

// validate checks an access token as RFC 9068 says a resource server must
// (typ at+jwt, signature from the jwks_uri, iss, aud, exp, iat, sub,
// client_id, jti) and returns its claims.
async function validate(config, accessToken) {
  const request = new Request(mcpURL, { headers: { authorization: `Bearer ${accessToken}` } });
  return oauth.validateJwtAccessToken(config.serverMetadata(), request, mcpURL, { [oauth.allowInsecureRequests]: true });
}

function scopes(claims) {
  return String(claims.scope || '').split(' ').filter(Boolean);
}

try {
  // Discovery (RFC 8414, the issuer checked against the URL it came from)
  // and registration (RFC 7591).
  const config = await client.dynamicClientRegistration(
    new URL(issuer),
    {
      client_name: 'openid-client 6.8.9 (Gatehouse interop)',
      redirect_uris: [redirectURI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    client.None(),
    { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
  );
  const meta = config.serverMetadata();
  if (meta.issuer !== issuer) throw new Error(`metadata issuer ${meta.issuer}, want ${issuer}`);
  if (meta.authorization_response_iss_parameter_supported !== true) throw new Error('metadata lacks authorization_response_iss_parameter_supported: true (RFC 9207)');
  step('discovery and registration', { client_id: config.clientMetadata().client_id });

  // Sign in with notes:read; before redeeming the code, the callback with a
  // forged or missing iss must be refused by the client (RFC 9207 §2.4),
  // which leaves the code unused.
  let tokens = await authorize(config, 'notes:read', async (callback, verifier, state) => {
    const forged = new URL(callback);
    forged.searchParams.set('iss', 'http://attacker.example');
    const forgedErr = await expectRefusal('a callback with a forged iss', /"iss"/, () =>
      client.authorizationCodeGrant(config, forged, { pkceCodeVerifier: verifier, expectedState: state }));
    const missing = new URL(callback);
    missing.searchParams.delete('iss');
    const missingErr = await expectRefusal('a callback without iss', /"iss"/, () =>
      client.authorizationCodeGrant(config, missing, { pkceCodeVerifier: verifier, expectedState: state }));
    step('RFC 9207: callbacks with a forged or missing iss refused', { iss: callback.searchParams.get('iss'), forged: forgedErr, missing: missingErr });
  });
  let claims = await validate(config, tokens.access_token);
  if (!scopes(claims).includes('notes:read') || scopes(claims).includes('notes:write')) throw new Error(`scope ${claims.scope}, want notes:read without notes:write`);
  if (claims.client_id !== config.clientMetadata().client_id) throw new Error(`client_id ${claims.client_id}, want ${config.clientMetadata().client_id}`);
  if (!tokens.refresh_token) throw new Error('no refresh token');
  step('sign in with notes:read; RFC 9068 access token valid', { scope: claims.scope, aud: claims.aud, typ: 'at+jwt' });

  // The MCP session with that token.
  let r = await mcp(config, tokens.access_token, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'openid-client', version: '6.8.9' } });
  if (r.status !== 200 || !r.body?.result) throw new Error(`initialize: ${r.status} ${JSON.stringify(r.body)}`);
  await mcp(config, tokens.access_token, 'notifications/initialized');
  r = await mcp(config, tokens.access_token, 'tools/list', {});
  const tools = (r.body?.result?.tools || []).map((t) => t.name);
  if (!tools.includes('list_notes')) throw new Error(`tools/list = ${JSON.stringify(r.body)}, want list_notes`);
  step('list tools', { tools });
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'list_notes', arguments: {} });
  if (r.status !== 200 || !r.body?.result || r.body.result.isError) throw new Error(`list_notes: ${r.status} ${JSON.stringify(r.body)}`);
  step('call list_notes');

  // Step-up: add_note with notes:read is answered 403 insufficient_scope
  // naming the scopes; authorizing them gives a token that may call it.
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'add_note', arguments: { title: 'from openid-client', text: 'stepped up' } });
  const want = /error="insufficient_scope"/.exec(r.challenge) && /scope="([^"]*)"/.exec(r.challenge);
  if (r.status !== 403 || !want) throw new Error(`add_note with notes:read: ${r.status} ${r.challenge}, want 403 with an insufficient_scope challenge`);
  step('add_note answered with the step-up challenge', { tools_listed: tools, challenge: r.challenge });
  tokens = await authorize(config, want[1]);
  claims = await validate(config, tokens.access_token);
  if (!scopes(claims).includes('notes:write')) throw new Error(`stepped-up scope ${claims.scope}, want notes:write`);
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'add_note', arguments: { title: 'from openid-client', text: 'stepped up' } });
  if (r.status !== 200 || !r.body?.result || r.body.result.isError) throw new Error(`add_note after step-up: ${r.status} ${JSON.stringify(r.body)}`);
  step('stepped up to notes:write; add_note called', { scope: claims.scope });

  // Refresh after expiry: the expired token is refused, the refreshed one
  // (RFC 9068 again) is accepted.
  await sleep(Number(expiryWaitMs));
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'list_notes', arguments: {} });
  if (r.status !== 401) throw new Error(`list_notes with an expired token: ${r.status}, want 401`);
  tokens = await client.refreshTokenGrant(config, tokens.refresh_token, { resource: mcpURL });
  claims = await validate(config, tokens.access_token);
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'list_notes', arguments: {} });
  if (r.status !== 200 || !r.body?.result || r.body.result.isError) throw new Error(`list_notes after refresh: ${r.status} ${JSON.stringify(r.body)}`);
  step('refresh after expiry', { scope: claims.scope });
  finish(true);
} catch (e) {
  finish(false, e);
}
