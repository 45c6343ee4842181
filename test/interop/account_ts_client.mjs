// Headless MCP TypeScript SDK client for the account page's interop test
// (account_test.go, TestAccount).
//
// Usage: node account_ts_client.mjs <mcp-url> <issuer> <username> <password> <redirect-uri> <go-file>
//
// It connects to the demo MCP server as the pre-registered gatehouse-demo
// client (the SDK discovers the authorization server from the 401; the
// script plays the browser for login and consent, browser.mjs), calls
// list_notes, prints "READY" and waits until <go-file> exists: meanwhile
// the test revokes the client on the account page in Chromium. It then
// refreshes with the SDK's refreshAuthorization, which must fail with
// invalid_grant. Steps are printed as "STEP {...}", the last line is
// "RESULT {...}"; exit status 0 means every step passed.

import { existsSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, discoverAuthorizationServerMetadata, refreshAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';
import { MemoryProvider, fail, finish, sleep, step, steps } from './browser.mjs';

const [mcpURL, issuer, username, password, redirectURI, goFile] = process.argv.slice(2);
if (!goFile) {
  console.error('usage: account_ts_client.mjs <mcp-url> <issuer> <username> <password> <redirect-uri> <go-file>');
  process.exit(2);
}

const provider = new MemoryProvider({
  redirectURI, username, password,
  clientName: 'Gatehouse interop (account page)',
  client: { client_id: 'gatehouse-demo' },
});

function newClient() {
  const transport = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
  const client = new Client({ name: 'gatehouse-interop-account', version: '1.0.0' });
  return { client, transport };
}

// The token endpoint's answers to the refresh: status and error code
// only, never the tokens of a successful answer.
const tokenResponses = [];
async function recordingFetch(url, init = {}) {
  const resp = await fetch(url, init);
  if (init.body) {
    let error;
    try { error = JSON.parse(await resp.clone().text()).error; } catch { error = undefined; }
    tokenResponses.push({ url: String(url), status: resp.status, error });
  }
  return resp;
}

try {
  let { client, transport } = newClient();
  try {
    await client.connect(transport);
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    await transport.finishAuth(provider.codes.at(-1));
    ({ client, transport } = newClient());
    await client.connect(transport);
  }
  step('connect', true, { authorizations: provider.authorizeURLs.length });

  const res = await client.callTool({ name: 'list_notes', arguments: {} });
  step('tools/call list_notes', !res.isError, { result: res.structuredContent });
  const tokens = provider.tokens();
  if (!tokens?.refresh_token) fail('refresh token', 'the authorization gave no refresh token');
  await client.close();

  console.log('READY');
  for (let waited = 0; !existsSync(goFile); waited += 100) {
    if (waited > 120000) fail('wait for the revocation', `${goFile} did not appear in 120 s`);
    await sleep(100);
  }

  const metadata = await discoverAuthorizationServerMetadata(issuer);
  try {
    await refreshAuthorization(issuer, {
      metadata,
      clientInformation: provider.clientInformation(),
      refreshToken: tokens.refresh_token,
      resource: new URL(mcpURL),
      fetchFn: recordingFetch,
    });
    step('refresh after revoke', false, { error: 'the refresh succeeded', tokenResponses });
  } catch (err) {
    const last = tokenResponses.at(-1) ?? {};
    const code = last.error;
    step('refresh after revoke', code === 'invalid_grant' && last.status === 400, { error: String(err), sdkError: err?.constructor?.name, status: last.status, code });
  }
  finish(steps.every((s) => s.ok) ? 0 : 1);
} catch (err) {
  fail('unexpected', err);
}
