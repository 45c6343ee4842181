// Headless MCP TypeScript SDK client for Gatehouse interop tests
// (mcp_typescript_test.go runs it; see INTEROP.md §2).
//
// Usage: node mcp_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <expiry-wait-seconds> [<client-id>]
//
// <client-id> is the pre-registered client to use (default gatehouse-demo),
// or "dcr": the SDK registers itself (RFC 7591) with the scope of the first
// challenge, as it does against any server that advertises a
// registration_endpoint, and then steps up beyond it.
//
// <expiry-wait-seconds> is how long an access token takes to be refused:
// its lifetime plus the server's clock skew.
//
// It plays the user agent itself: redirectToAuthorization fetches the
// authorize URL with a cookie jar, fills the login and consent forms, and
// stops at the redirect to <redirect-uri>, keeping the code. Each step is
// printed as a JSON line "STEP {...}"; the last line is "RESULT {...}".
// Exit status 0 means every required step passed.
//
// It must live below test/interop so that ES module resolution finds
// test/interop/node_modules.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { MemoryProvider, fail, finish, sleep, step, steps } from './browser.mjs';

const [mcpURL, username, password, redirectURI, waitArg, clientArg = 'gatehouse-demo'] = process.argv.slice(2);
if (!waitArg) {
  console.error('usage: mcp_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <expiry-wait-seconds> [<client-id>|dcr]');
  process.exit(2);
}
const expiryWait = Number(waitArg) * 1000;

const provider = new MemoryProvider({
  redirectURI, username, password,
  clientName: 'Gatehouse interop (TypeScript SDK)',
  client: clientArg === 'dcr' ? undefined : { client_id: clientArg },
});

// exchanges records what the SDK sends through its transport (MCP
// requests, and the token requests of its auth() calls): method, URL,
// status, WWW-Authenticate, and the grant_type and scope of a token
// request. Step 5 checks the exact exchange of the SDK's step-up quirk.
const exchanges = [];
async function recordingFetch(url, init = {}) {
  const resp = await fetch(url, init);
  const x = { method: init.method ?? 'GET', url: String(url), status: resp.status, wwwAuthenticate: resp.headers.get('www-authenticate') };
  x.mcp = x.url === mcpURL;
  if (init.body instanceof URLSearchParams || typeof init.body === 'string') {
    const form = new URLSearchParams(init.body);
    if (form.has('grant_type')) {
      x.grantType = form.get('grant_type');
      x.scope = form.get('scope');
    }
  }
  exchanges.push(x);
  return resp;
}

// authParams parses a WWW-Authenticate challenge: its scheme and its
// auth-params (quoted-string values unescaped).
function authParams(header) {
  const out = { scheme: (header ?? '').split(' ')[0] };
  for (const m of (header ?? '').matchAll(/([A-Za-z_]+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]] = m[2].replace(/\\(.)/g, '$1');
  return out;
}

// stepUpScope is the scope of the demo's challenge for add_note: its
// baseline notes:read and the tool's notes:write.
const stepUpScope = 'notes:read notes:write';

function newClient() {
  const transport = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'gatehouse-interop-ts', version: '1.0.0' });
  return { client, transport };
}

// connect connects, completing an authorization when the server asks for one.
async function connect() {
  let { client, transport } = newClient();
  try {
    await client.connect(transport);
    return client;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  await transport.finishAuth(provider.codes.at(-1));
  ({ client, transport } = newClient());
  await client.connect(transport);
  return client;
}

const names = (r) => r.tools.map((t) => t.name).sort();

try {
  // 1. Discovery from the 401, authorization with login and consent.
  let client;
  try {
    client = await connect();
  } catch (err) {
    fail('connect', err);
  }
  const first = new URL(provider.authorizeURLs[0]);
  step('connect', true, {
    registrations: provider.savedClients.map((c) => ({ client_id: c.client_id, scope: c.scope })),
    authorizations: provider.authorizeURLs.length,
    scope: first.searchParams.get('scope'),
    resource: first.searchParams.get('resource'),
    method: first.searchParams.get('code_challenge_method'),
  });

  // 2. tools/list shows every tool a step-up can make callable, those
  // needing notes:write too (list_tools grantable).
  const tools = names(await client.listTools());
  step('tools/list', JSON.stringify(tools) === JSON.stringify(['add_note', 'delete_note', 'list_notes', 'read_note']), { tools });
  // The tool the step-ups below call, taken from the list as a host that
  // only offers listed tools does.
  const addNote = tools.find((name) => name === 'add_note');

  // 3. tools/call.
  let r = await client.callTool({ name: 'list_notes', arguments: {} });
  step('tools/call list_notes', !r.isError, {});

  // 4. Expiry: wait out the access token; the next call gets 401 and the
  // SDK refreshes.
  const saves = provider.savedTokens.length;
  const authorizations = provider.authorizeURLs.length;
  await sleep(expiryWait + 1000);
  r = await client.callTool({ name: 'list_notes', arguments: {} });
  step('refresh after expiry', !r.isError && provider.savedTokens.length > saves && provider.authorizeURLs.length === authorizations, {
    tokenSaves: provider.savedTokens.length - saves,
    newAuthorizations: provider.authorizeURLs.length - authorizations,
  });

  // 5. Step-up while holding a refresh token. INTEROP.md §2: this SDK
  // answers the 403 insufficient_scope challenge by refreshing its token
  // without the challenged scope, is challenged again with the very same
  // header and gives up ("403 after trying upscoping"). The step passes
  // only on that exact exchange, and fails when the quirk is gone (the
  // SDK steps up): like a stale conformance baseline, the expectation must
  // then change here, in mcp_typescript_test.go and in INTEROP.md §2.
  const mark = exchanges.length;
  const authorizationsBefore = provider.authorizeURLs.length;
  let outcome;
  let error;
  try {
    r = await client.callTool({ name: addNote, arguments: { title: 'x' } });
    outcome = r.isError ? 'the call failed without a challenge' : 'stepped up';
  } catch (err) {
    error = err;
    outcome = 'error';
  }
  const seen = exchanges.slice(mark);
  const calls = seen.filter((x) => x.mcp && x.method === 'POST');
  const tokens = seen.filter((x) => x.grantType);
  const challenged = (x) => {
    const p = authParams(x.wwwAuthenticate);
    return x.status === 403 && p.scheme === 'Bearer' && p.error === 'insufficient_scope' && p.scope === stepUpScope;
  };
  const quirk = outcome === 'error' && error?.code === 403 && /Server returned 403 after trying upscoping/.test(String(error)) &&
    calls.length === 2 && calls.every(challenged) && calls[0].wwwAuthenticate === calls[1].wwwAuthenticate &&
    tokens.length === 1 && tokens[0].grantType === 'refresh_token' && tokens[0].status === 200 &&
    !(tokens[0].scope ?? '').split(' ').includes('notes:write') &&
    provider.authorizeURLs.length === authorizationsBefore;
  step('step-up with refresh token', quirk, {
    outcome: quirk ? 'known SDK quirk: refreshed without the challenged scope, got the same 403, gave up'
      : outcome === 'stepped up' ? 'STALE QUIRK: the SDK now steps up while holding a refresh token; expect that here and in mcp_typescript_test.go, and update INTEROP.md §2'
        : 'unexpected: ' + outcome,
    challenges: calls.map((x) => ({ status: x.status, wwwAuthenticate: x.wwwAuthenticate })),
    tokenRequests: tokens.map((x) => ({ grant_type: x.grantType, scope: x.scope, status: x.status })),
    newAuthorizations: provider.authorizeURLs.length - authorizationsBefore,
    error: error === undefined ? undefined : String(error),
  });
  // A successful call resets the SDK's upscoping guard.
  r = await client.callTool({ name: 'list_notes', arguments: {} });
  step('tools/call after refused step-up', !r.isError, {});

  // 6. Step-up without a refresh token: the SDK re-authorizes with the
  // challenged scopes.
  provider.hideRefreshToken = true;
  const before = provider.authorizeURLs.length;
  let stepped = false;
  try {
    r = await client.callTool({ name: addNote, arguments: { title: 'From TypeScript', text: 'step-up worked' } });
    stepped = !r.isError;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) fail('step-up', err);
    await client.transport.finishAuth(provider.codes.at(-1));
    r = await client.callTool({ name: addNote, arguments: { title: 'From TypeScript', text: 'step-up worked' } });
    stepped = !r.isError;
  }
  provider.hideRefreshToken = false;
  const stepURL = provider.authorizeURLs.length > before ? new URL(provider.authorizeURLs.at(-1)) : undefined;
  step('step-up to notes:write', stepped && !!stepURL, {
    scope: stepURL?.searchParams.get('scope'),
    result: r?.structuredContent,
  });

  // 7. Everything is callable now.
  const all = names(await client.listTools());
  step('tools/list after step-up', JSON.stringify(all) === JSON.stringify(['add_note', 'delete_note', 'list_notes', 'read_note']), { tools: all });
  const id = r?.structuredContent?.id;
  r = await client.callTool({ name: 'read_note', arguments: { id } });
  step('read_note', !r.isError && JSON.stringify(r.structuredContent).includes('step-up worked'), { note: r.structuredContent });

  await client.close();
  finish(steps.every((s) => s.ok) ? 0 : 1);
} catch (err) {
  fail('unexpected', err);
}
