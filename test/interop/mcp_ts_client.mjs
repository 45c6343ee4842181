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

function newClient() {
  const transport = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
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

  // 2. tools/list shows only what notes:read may call.
  const tools = names(await client.listTools());
  step('tools/list', JSON.stringify(tools) === JSON.stringify(['list_notes', 'read_note']), { tools });

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

  // 5. Step-up while holding a refresh token. INTEROP.md §2: this SDK first
  // refreshes with the same scope and then gives up ("403 after trying
  // upscoping"); a later version may step up properly. Either is recorded.
  try {
    r = await client.callTool({ name: 'add_note', arguments: { title: 'x' } });
    step('step-up with refresh token', !r.isError, { outcome: 'stepped up' });
  } catch (err) {
    const quirk = /403 after trying upscoping/.test(String(err));
    step('step-up with refresh token', quirk, { outcome: quirk ? 'known SDK quirk: refreshed, then gave up' : 'unexpected', error: String(err) });
  }
  // A successful call resets the SDK's upscoping guard.
  r = await client.callTool({ name: 'list_notes', arguments: {} });
  step('tools/call after refused step-up', !r.isError, {});

  // 6. Step-up without a refresh token: the SDK re-authorizes with the
  // challenged scopes.
  provider.hideRefreshToken = true;
  const before = provider.authorizeURLs.length;
  let stepped = false;
  try {
    r = await client.callTool({ name: 'add_note', arguments: { title: 'From TypeScript', text: 'step-up worked' } });
    stepped = !r.isError;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) fail('step-up', err);
    await client.transport.finishAuth(provider.codes.at(-1));
    r = await client.callTool({ name: 'add_note', arguments: { title: 'From TypeScript', text: 'step-up worked' } });
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
