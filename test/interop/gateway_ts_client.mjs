// Headless MCP TypeScript SDK client for the gateway interop test
// (gateway_test.go runs it against each gateway route).
//
// Usage: node gateway_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <allowed-tool> <restricted-tool>
//
// It authorizes through the gateway's 401 (playing the browser through the
// login and consent pages), lists tools (the restricted one must be
// listed: list_tools grantable), calls the allowed tool, calls the
// restricted one taken from the list and is stepped up (without a refresh
// token, so the SDK re-authorizes with the challenged scope). Each step is a JSON line "STEP {...}"; the last
// line is "RESULT {...}". Exit status 0 means every step passed.
//
// It must live below test/interop so that ES module resolution finds
// test/interop/node_modules.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { MemoryProvider, finish, step, steps } from './browser.mjs';

const [mcpURL, username, password, redirectURI, allowedTool, restrictedTool] = process.argv.slice(2);
if (!restrictedTool) {
  console.error('usage: gateway_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <allowed-tool> <restricted-tool>');
  process.exit(2);
}

const provider = new MemoryProvider({
  redirectURI, username, password,
  clientName: 'Gatehouse gateway interop (TypeScript SDK)',
  client: { client_id: 'gatehouse-demo' },
});
const newClient = () => ({
  client: new Client({ name: 'gatehouse-gateway-interop-ts', version: '1.0.0' }),
  transport: new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider }),
});
const toolNames = async (client) => (await client.listTools()).tools.map((t) => t.name).sort();
const text = (r) => (r.content ?? []).map((c) => c.text ?? '').join('');

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
  const first = new URL(provider.authorizeURLs[0]);
  step('connect', provider.authorizeURLs.length === 1, {
    scope: first.searchParams.get('scope'), resource: first.searchParams.get('resource'), session: transport.sessionId,
  });

  let tools = await toolNames(client);
  step('tools/list grantable', tools.includes(allowedTool) && tools.includes(restrictedTool), { tools });
  // The tool to step up for, taken from the list as a host that only
  // offers listed tools does.
  const listed = tools.find((name) => name === restrictedTool) ?? restrictedTool;

  let r = await client.callTool({ name: allowedTool, arguments: { message: 'through the gateway' } });
  step('tools/call allowed', !r.isError && text(r).includes('through the gateway'), { text: text(r) });

  provider.hideRefreshToken = true;
  const before = provider.authorizeURLs.length;
  try {
    r = await client.callTool({ name: listed, arguments: {} });
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    await client.transport.finishAuth(provider.codes.at(-1));
    r = await client.callTool({ name: listed, arguments: {} });
  }
  provider.hideRefreshToken = false;
  const stepURL = provider.authorizeURLs.length > before ? new URL(provider.authorizeURLs.at(-1)) : undefined;
  step('step-up', !r.isError && !!stepURL, { scope: stepURL?.searchParams.get('scope'), text: text(r).slice(0, 4000) });

  tools = await toolNames(client);
  step('tools/list after step-up', tools.includes(restrictedTool), { tools });

  await client.close();
  finish(steps.every((s) => s.ok) ? 0 : 1);
} catch (err) {
  step('unexpected', false, { error: String(err && err.stack || err) });
  finish(1);
}
