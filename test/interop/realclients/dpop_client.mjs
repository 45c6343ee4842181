// openid-client 6.8.9 (and its oauth4webapi) as a DPoP client (RFC 9449)
// of `gatehouse dev --dpop-require-nonce`: TestDPoP runs it
// (test/interop/dpop_test.go).
//
//   node dpop_client.mjs ISSUER MCP_URL REDIRECT_URI
//
// Each step is printed as "STEP {json}"; an authorization the user must
// complete is printed as "AUTHORIZE <url>", and the test answers with the
// URL the browser was redirected to, one line on standard input. The last
// line is "RESULT {json}".

import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';
import { createHash, webcrypto } from 'node:crypto';
import { createInterface } from 'node:readline';

const [issuer, mcpURL, redirectURI] = process.argv.slice(2);

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

// exchanges records every request the client makes: method, URL path,
// status, whether it carried a DPoP proof, the DPoP-Nonce answered and
// the error code of a refusal. It shows the nonce retries happen.
let exchanges = [];
async function recordingFetch(url, options) {
  const resp = await fetch(url, options);
  const h = new Headers(options?.headers);
  let error = '';
  if (resp.status >= 400) {
    const www = resp.headers.get('www-authenticate') || '';
    const m = /error="([^"]+)"/.exec(www);
    if (m) error = m[1];
    else {
      try { error = (await resp.clone().json()).error || ''; } catch {}
    }
  }
  exchanges.push({ method: options?.method || 'GET', path: new URL(url).pathname, status: resp.status, proof: h.has('dpop'), nonce: resp.headers.has('dpop-nonce'), error });
  return resp;
}
function take() {
  const e = exchanges;
  exchanges = [];
  return e;
}

// jkt is the RFC 7638 thumbprint of an EC public key.
async function jkt(publicKey) {
  const { crv, kty, x, y } = await webcrypto.subtle.exportKey('jwk', publicKey);
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}
function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

let sessionID;
let nextID = 1;
async function mcp(config, accessToken, method, params, DPoP) {
  const msg = { jsonrpc: '2.0', method, ...(params && { params }) };
  if (!method.startsWith('notifications/')) msg.id = nextID++;
  const headers = new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' });
  if (sessionID) headers.set('mcp-session-id', sessionID);
  let resp;
  try {
    resp = await client.fetchProtectedResource(config, accessToken, new URL(mcpURL), 'POST', JSON.stringify(msg), headers, DPoP && { DPoP });
  } catch (e) {
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

// nonceRetried checks that a call was refused once with use_dpop_nonce
// (and a DPoP-Nonce) and retried with a proof that passed.
function nonceRetried(what, ex, path) {
  const at = ex.filter((e) => e.path === path);
  if (at.length !== 2 || at[0].error !== 'use_dpop_nonce' || !at[0].nonce || !at[1].proof || at[1].status >= 400) {
    throw new Error(`${what}: requests ${JSON.stringify(at)}, want one use_dpop_nonce refusal with a DPoP-Nonce, then a success`);
  }
  return at;
}

try {
  const config = await client.dynamicClientRegistration(
    new URL(issuer),
    {
      client_name: 'openid-client 6.8.9 DPoP (Gatehouse interop)',
      redirect_uris: [redirectURI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      dpop_bound_access_tokens: true,
    },
    client.None(),
    { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
  );
  config[client.customFetch] = recordingFetch;
  const meta = config.serverMetadata();
  if (!meta.dpop_signing_alg_values_supported?.includes('ES256')) throw new Error(`dpop_signing_alg_values_supported = ${meta.dpop_signing_alg_values_supported}, want ES256`);
  if (config.clientMetadata().dpop_bound_access_tokens !== true) throw new Error('registration did not echo dpop_bound_access_tokens: true');
  step('discovery and registration with dpop_bound_access_tokens', { algs: meta.dpop_signing_alg_values_supported });

  const keyPair = await client.randomDPoPKeyPair('ES256');
  const DPoP = client.getDPoPHandle(config, keyPair);
  const thumbprint = await jkt(keyPair.publicKey);

  // Sign in; the code exchange carries a proof; the server wants a nonce
  // first (use_dpop_nonce), and openid-client retries with it.
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectURI, scope: 'notes:read', resource: mcpURL, state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  console.log('AUTHORIZE ' + url.href);
  const callback = new URL(await nextAnswer());
  take();
  let tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: mcpURL }, { DPoP });
  const tokenPath = new URL(meta.token_endpoint).pathname;
  const ex = nonceRetried('code exchange', take(), tokenPath);
  if (tokens.token_type !== 'dpop') throw new Error(`token_type ${tokens.token_type}, want DPoP`);
  if (claimsOf(tokens.access_token).cnf?.jkt !== thumbprint) throw new Error(`cnf.jkt ${JSON.stringify(claimsOf(tokens.access_token).cnf)}, want ${thumbprint}`);
  step('code exchange with a proof, after a nonce retry: DPoP-bound token', { token_type: tokens.token_type, jkt: thumbprint, requests: ex });

  // The demo MCP server: Authorization: DPoP with a proof per request;
  // it wants its own nonce first, and openid-client retries.
  let r = await mcp(config, tokens.access_token, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'openid-client-dpop', version: '6.8.9' } }, DPoP);
  if (r.status !== 200 || !r.body?.result) throw new Error(`initialize: ${r.status} ${r.challenge} ${JSON.stringify(r.body)}`);
  const mcpPath = new URL(mcpURL).pathname;
  step('MCP initialize with a proof, after a nonce retry', { requests: nonceRetried('initialize', take(), mcpPath) });
  await mcp(config, tokens.access_token, 'notifications/initialized', undefined, DPoP);
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'list_notes', arguments: {} }, DPoP);
  if (r.status !== 200 || !r.body?.result || r.body.result.isError) throw new Error(`list_notes: ${r.status} ${r.challenge} ${JSON.stringify(r.body)}`);
  step('call list_notes with a proof', { requests: take() });

  // The same token as a bearer token: refused with the DPoP challenge.
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'list_notes', arguments: {} });
  if (r.status !== 401 || !/^DPoP /.test(r.challenge) || !/error="invalid_token"/.test(r.challenge) || !/algs="[^"]*ES256/.test(r.challenge)) {
    throw new Error(`the bound token as Bearer: ${r.status} ${r.challenge}, want 401 with a DPoP invalid_token challenge naming ES256`);
  }
  take();
  step('the bound token as a bearer token refused with the DPoP challenge', { challenge: r.challenge });

  // A refresh without the key is refused (the refresh token is bound);
  // with it, a new bound token.
  try {
    await client.refreshTokenGrant(config, tokens.refresh_token, { resource: mcpURL });
    throw new Error('a refresh without a proof was accepted');
  } catch (e) {
    if (e.error !== 'invalid_dpop_proof') throw new Error(`a refresh without a proof: ${e.error || e.message}, want invalid_dpop_proof`);
  }
  take();
  step('refresh without a proof refused (invalid_dpop_proof)');
  tokens = await client.refreshTokenGrant(config, tokens.refresh_token, { resource: mcpURL }, { DPoP });
  if (tokens.token_type !== 'dpop' || claimsOf(tokens.access_token).cnf?.jkt !== thumbprint) throw new Error(`refreshed token_type ${tokens.token_type}, cnf ${JSON.stringify(claimsOf(tokens.access_token).cnf)}`);
  r = await mcp(config, tokens.access_token, 'tools/call', { name: 'list_notes', arguments: {} }, DPoP);
  if (r.status !== 200 || !r.body?.result || r.body.result.isError) throw new Error(`list_notes after refresh: ${r.status} ${r.challenge}`);
  step('refresh with a proof; the refreshed token calls list_notes', { requests: take() });
  finish(true);
} catch (e) {
  finish(false, e);
}
