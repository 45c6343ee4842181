// Headless MCP TypeScript SDK client for the gateway interop test
// (gateway_test.go runs it against each gateway route).
//
// Usage: node gateway_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <allowed-tool> <restricted-tool>
//
// It authorizes through the gateway's 401 (playing the browser through the
// login and consent pages), lists tools (the restricted one must be
// hidden), calls the allowed tool, is stepped up for the restricted one
// (without a refresh token, so the SDK re-authorizes with the challenged
// scope) and calls it. Each step is a JSON line "STEP {...}"; the last
// line is "RESULT {...}". Exit status 0 means every step passed.
//
// It must live below test/interop so that ES module resolution finds
// test/interop/node_modules.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { finish, playBrowser, step, steps } from './browser.mjs';

const [mcpURL, username, password, redirectURI, allowedTool, restrictedTool] = process.argv.slice(2);
if (!restrictedTool) {
  console.error('usage: gateway_ts_client.mjs <mcp-url> <username> <password> <redirect-uri> <allowed-tool> <restricted-tool>');
  process.exit(2);
}

// A pre-registered public client; everything kept in memory as handed over.
class HeadlessProvider {
  constructor() {
    this._client = { client_id: 'gatehouse-demo' };
    this.hideRefreshToken = false;
    this.authorizeURLs = [];
    this.codes = [];
  }
  get redirectUrl() { return redirectURI; }
  get clientMetadata() {
    return { client_name: 'Gatehouse gateway interop (TypeScript SDK)', redirect_uris: [redirectURI],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  state() { this._state = crypto.randomUUID(); return this._state; }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() {
    if (this._tokens && this.hideRefreshToken) {
      const { refresh_token, ...rest } = this._tokens;
      return rest;
    }
    return this._tokens;
  }
  saveTokens(t) { this._tokens = t; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  discoveryState() { return this._discovery; }
  saveDiscoveryState(s) { this._discovery = s; }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }
  async redirectToAuthorization(url) {
    this.authorizeURLs.push(url.toString());
    const { back } = await playBrowser(url.toString(), { redirectURI, username, password });
    const q = back.searchParams;
    if (q.get('error')) throw new Error(`authorization error ${q.get('error')}: ${q.get('error_description')}`);
    if (q.get('state') !== this._state) throw new Error(`state ${q.get('state')}, want ${this._state}`);
    this.codes.push(q.get('code'));
  }
}

const provider = new HeadlessProvider();
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
  step('tools/list filtered', tools.includes(allowedTool) && !tools.includes(restrictedTool), { tools });

  let r = await client.callTool({ name: allowedTool, arguments: { message: 'through the gateway' } });
  step('tools/call allowed', !r.isError && text(r).includes('through the gateway'), { text: text(r) });

  provider.hideRefreshToken = true;
  const before = provider.authorizeURLs.length;
  try {
    r = await client.callTool({ name: restrictedTool, arguments: {} });
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    await client.transport.finishAuth(provider.codes.at(-1));
    r = await client.callTool({ name: restrictedTool, arguments: {} });
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
