// The MCP TypeScript SDK client whose authorization a real browser carries
// (upstream_hydra_test.go runs it: issue 14, "Real peers in the tests").
//
// Usage: node upstream_ts_client.mjs <mcp-url> <client-id>
//
// Unlike mcp_ts_client.mjs it does not play the browser. It behaves like a
// CLI MCP host: it serves its redirect URI on a loopback port of its own
// (http://127.0.0.1:<port>/callback), and when the SDK asks it to send the
// user to the authorization URL it prints that URL as the step
// "authorization URL" for the Go test, which opens it in Chromium. The
// browser's arrival at the redirect URI hands it the code (state and iss,
// RFC 9207, checked); the SDK then exchanges it, lists the tools and calls
// list_notes. Each step is printed as a JSON line "STEP {...}"; the last
// line is "RESULT {...}". Exit status 0 means every step passed.
//
// It must live below test/interop so that ES module resolution finds
// test/interop/node_modules.

import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { MemoryProvider, fail, finish, step, steps } from './browser.mjs';

const [mcpURL, clientID] = process.argv.slice(2);
if (!clientID) {
  console.error('usage: upstream_ts_client.mjs <mcp-url> <client-id>');
  process.exit(2);
}

// The redirect URI's listener: the first request to /callback settles
// arrival with its query; the browser is shown a short page.
let arrive;
const arrival = new Promise((resolve) => { arrive = resolve; });
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.pathname !== '/callback') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('Signed in. You can close this tab.');
  arrive(u.searchParams);
});
await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).on('error', reject));
const redirectURI = `http://127.0.0.1:${server.address().port}/callback`;

// MemoryProvider with abandon only records the authorization URL (it
// plays no browser); redirectToAuthorization also hands it to the Go test.
class BrowserProvider extends MemoryProvider {
  async redirectToAuthorization(url) {
    await super.redirectToAuthorization(url);
    step('authorization URL', true, { url: url.toString(), redirectURI });
  }
}
const provider = new BrowserProvider({
  redirectURI,
  clientName: 'Gatehouse interop (TypeScript SDK, upstream sign-in)',
  client: { client_id: clientID },
  abandon: true,
});

const newTransport = () => new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });

try {
  // 1. The first connect is refused (401); the SDK discovers Gatehouse
  // and asks for the authorization URL to be opened.
  let client = new Client({ name: 'gatehouse-interop-ts-upstream', version: '1.0.0' });
  let transport = newTransport();
  try {
    await client.connect(transport);
    fail('connect', new Error('connected without an authorization'));
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) fail('connect', err);
  }
  if (provider.authorizeURLs.length !== 1) fail('connect', new Error(`${provider.authorizeURLs.length} authorization URLs, want 1`));

  // 2. The browser comes back to the redirect URI.
  const q = await arrival;
  // state: the one the SDK put in the authorization URL.
  const sent = new URL(provider.authorizeURLs[0]).searchParams.get('state');
  const back = { state: !!sent && q.get('state') === sent, iss: q.get('iss'), code: !!q.get('code'), error: q.get('error') ?? undefined };
  step('callback', back.state && !!back.iss && back.code && !back.error, back);
  if (!steps.at(-1).ok) finish(1);
  server.close();

  // 3. The SDK exchanges the code and connects.
  try {
    await transport.finishAuth(q.get('code'));
    client = new Client({ name: 'gatehouse-interop-ts-upstream', version: '1.0.0' });
    transport = newTransport();
    await client.connect(transport);
  } catch (err) {
    fail('token', err);
  }
  const tokens = provider.tokens();
  step('token', !!tokens?.access_token, { scope: tokens?.scope, refresh: !!tokens?.refresh_token });

  // 4. tools/list and tools/call list_notes.
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  step('tools/list', tools.includes('list_notes'), { tools });
  const r = await client.callTool({ name: 'list_notes', arguments: {} });
  step('tools/call list_notes', !r.isError, { result: r.structuredContent });

  await client.close();
  finish(steps.every((s) => s.ok) ? 0 : 1);
} catch (err) {
  fail('unexpected', err);
}
