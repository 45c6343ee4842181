// Headless MCP TypeScript SDK client for the OpenAPI route interop test
// (openapi_test.go runs it against a gateway route serving an OpenAPI
// document's operations as tools).
//
// Usage: node openapi_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <calls-json>
//
// calls-json is {"read": {"name", "arguments"}, "invalid": {"name", "arguments"}, "write": {"name", "arguments"}}.
// It authorizes through the gateway's 401 (playing the browser), lists
// tools, calls the read tool, calls a tool with invalid arguments (which
// must fail as a tool error naming the argument), then calls the write
// tool taken from the list and is stepped up. Each step is a JSON line
// "STEP {...}"; the last line is "RESULT {...}". Exit status 0 means every
// step passed.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { MemoryProvider, finish, step, steps } from './browser.mjs';

const [mcpURL, username, password, redirectURI, callsJSON] = process.argv.slice(2);
if (!callsJSON) {
  console.error('usage: openapi_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <calls-json>');
  process.exit(2);
}
const calls = JSON.parse(callsJSON);

const provider = new MemoryProvider({
  redirectURI, username, password,
  clientName: 'Gatehouse OpenAPI interop (TypeScript SDK)',
  client: { client_id: 'gatehouse-demo' },
});
const newClient = () => ({
  client: new Client({ name: 'gatehouse-openapi-interop-ts', version: '1.0.0' }),
  transport: new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider }),
});
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
  step('connect', provider.authorizeURLs.length === 1, { scope: new URL(provider.authorizeURLs[0]).searchParams.get('scope') });

  const listed = (await client.listTools()).tools;
  const names = listed.map((t) => t.name).sort();
  const read = listed.find((t) => t.name === calls.read.name);
  step('tools/list', !!read && names.includes(calls.write.name), {
    tools: names, readOnlyHint: read?.annotations?.readOnlyHint, inputSchema: read?.inputSchema,
  });

  let r = await client.callTool({ name: calls.read.name, arguments: calls.read.arguments });
  step('tools/call read', !r.isError, { text: text(r).slice(0, 2000), structuredContent: r.structuredContent });

  r = await client.callTool({ name: calls.invalid.name, arguments: calls.invalid.arguments });
  step('tools/call invalid arguments', r.isError === true && /argument/i.test(text(r)), { text: text(r) });

  provider.hideRefreshToken = true;
  const before = provider.authorizeURLs.length;
  try {
    r = await client.callTool({ name: calls.write.name, arguments: calls.write.arguments });
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    await client.transport.finishAuth(provider.codes.at(-1));
    r = await client.callTool({ name: calls.write.name, arguments: calls.write.arguments });
  }
  provider.hideRefreshToken = false;
  const stepURL = provider.authorizeURLs.length > before ? new URL(provider.authorizeURLs.at(-1)) : undefined;
  step('step-up write', !r.isError && !!stepURL, { scope: stepURL?.searchParams.get('scope'), text: text(r).slice(0, 2000) });

  await client.close();
  finish(steps.every((s) => s.ok) ? 0 : 1);
} catch (err) {
  step('unexpected', false, { error: String(err && err.stack || err) });
  finish(1);
}
