// Headless MCP TypeScript SDK client that registers itself, for the
// Gatehouse interop tests (mcp_ts_registration_test.go runs it; see
// INTEROP.md §2). Unlike mcp_ts_client.mjs it starts with no client
// information: the provider's clientInformation() returns undefined until
// the SDK calls saveClientInformation, whose argument is stored unchanged.
//
// Usage:
//
//	node mcp_ts_register.mjs dcr  <mcp-url> <username> <password> <redirect-uri>
//	node mcp_ts_register.mjs cimd <mcp-url> <username> <password> <redirect-uri> <client-metadata-url>
//
// dcr: the SDK registers at the AS's registration_endpoint (RFC 7591).
// It does so twice with the same metadata, as a client that reconnects
// does: the first connection is abandoned at the authorization redirect
// (the user never signs in), the second, with a fresh provider, registers
// again and completes the code flow; then tools/list and tools/call.
//
// cimd: the provider has a clientMetadataUrl, so the SDK uses it as the
// client_id when the AS advertises client_id_metadata_document_supported
// (SDK 1.32.2 auth.js: `supportsUrlBasedClientId && clientMetadataUrl`;
// the URL must be https with a non-root path). The AS fetches the
// document; the SDK never does. Then the code flow, tools/list,
// tools/call.
//
// The script plays the user agent: redirectToAuthorization fetches the
// authorize URL with a cookie jar, fills the login and consent forms
// (recording what the consent page says), and stops at the redirect to
// <redirect-uri>, keeping the code. Each step is printed as a JSON line
// "STEP {...}"; the last line is "RESULT {...}". Exit status 0 means every
// step passed.
//
// It must live below test/interop so that ES module resolution finds
// test/interop/node_modules.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { MemoryProvider, fail, finish, step, steps, text } from './browser.mjs';

const [mode, mcpURL, username, password, redirectURI, metadataURL] = process.argv.slice(2);
if (!redirectURI || !['dcr', 'cimd'].includes(mode) || (mode === 'cimd' && !metadataURL)) {
  console.error('usage: mcp_ts_register.mjs dcr|cimd <mcp-url> <username> <password> <redirect-uri> [<client-metadata-url>]');
  process.exit(2);
}

// consentDetails reads the consent page's details list (<dt>/<dd> pairs),
// the verified-domain badge and the warnings.
function consentDetails(html) {
  const details = {};
  const re = /<dt>([\s\S]*?)<\/dt>\s*<dd>([\s\S]*?)<\/dd>/gi;
  let m;
  while ((m = re.exec(html))) details[text(m[1])] = m[2];
  const warnings = [];
  const wre = /<div class="warning"[^>]*>([\s\S]*?)<\/div>/gi;
  while ((m = wre.exec(html))) warnings.push(text(m[1]));
  const pub = details['Publisher'];
  return {
    app: details['App'] !== undefined ? text(details['App']) : undefined,
    clientId: details['Client ID'] !== undefined ? text(details['Client ID']) : undefined,
    publisher: pub !== undefined ? text(pub.replace(/<span class="badge">[\s\S]*?<\/span>/i, '')) : undefined,
    publisherVerified: pub !== undefined && /<span class="badge">\s*verified domain\s*<\/span>/i.test(pub),
    website: details['Website'] !== undefined ? text(details['Website']) : undefined,
    warnings,
  };
}

// newProvider starts with no client information: the SDK registers.
function newProvider({ metadataURL, abandon } = {}) {
  return new MemoryProvider({
    redirectURI, username, password, metadataURL, abandon, reregister: true,
    clientName: 'Gatehouse interop (TypeScript SDK, registration)',
  });
}


function newClient(provider) {
  const transport = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
  const client = new Client({ name: 'gatehouse-interop-ts-register', version: '1.0.0' });
  return { client, transport };
}

// connect connects, completing an authorization when the server asks for
// one. With an abandoning provider it returns undefined after the
// redirect to the authorization endpoint.
async function connect(provider, abandon) {
  let { client, transport } = newClient(provider);
  try {
    await client.connect(transport);
    return client;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  if (abandon) {
    await transport.close().catch(() => {});
    return undefined;
  }
  await transport.finishAuth(provider.codes.at(-1));
  ({ client, transport } = newClient(provider));
  await client.connect(transport);
  return client;
}

// registration is what a step reports about a saved client information.
// (The SDK parses the registration response with a schema that drops RFC
// 7592's registration_client_uri and registration_access_token, so they
// never reach the provider.)
function registration(info) {
  if (!info) return undefined;
  return {
    client_id: info.client_id,
    issuer: info.issuer,
    token_endpoint_auth_method: info.token_endpoint_auth_method,
    has_secret: info.client_secret !== undefined,
    redirect_uris: info.redirect_uris,
  };
}

const names = (r) => r.tools.map((t) => t.name).sort();

async function useTools(client) {
  const tools = names(await client.listTools());
  // Every tool, add_note and delete_note (notes:write) too: the demo's
  // tools/list keeps what a step-up can grant.
  step('tools/list', JSON.stringify(tools) === JSON.stringify(['add_note', 'delete_note', 'list_notes', 'read_note']), { tools });
  const r = await client.callTool({ name: 'list_notes', arguments: {} });
  step('tools/call list_notes', !r.isError, { result: r.structuredContent });
  await client.close();
}

try {
  if (mode === 'dcr') {
    // 1. A client that registers and is abandoned before the user signs in.
    const first = newProvider({ abandon: true });
    try {
      const c = await connect(first, true);
      if (c) throw new Error('connected without authorization');
    } catch (err) {
      fail('first registration', err);
    }
    const r1 = registration(first.savedClients[0]);
    step('first registration', first.savedClients.length === 1 && !!r1?.client_id && first.authorizeURLs.length === 1, {
      registration: r1,
      authorizeClientId: first.authorizeURLs[0] && new URL(first.authorizeURLs[0]).searchParams.get('client_id'),
    });

    // 2. The same client connects again with nothing stored: it registers
    // again with the same metadata and completes the flow.
    const second = newProvider();
    let client;
    try {
      client = await connect(second, false);
    } catch (err) {
      fail('second registration and authorization', err);
    }
    const r2 = registration(second.savedClients[0]);
    const auth = new URL(second.authorizeURLs[0]);
    step('second registration and authorization', second.savedClients.length >= 1 && second.codes.length === 1, {
      registration: r2,
      saves: second.savedClients.length,
      authorizeClientId: auth.searchParams.get('client_id'),
      resource: auth.searchParams.get('resource'),
      method: auth.searchParams.get('code_challenge_method'),
      consent: second.consentPages.map(consentDetails)[0],
    });
    step('same client id', !!r1?.client_id && r1.client_id === r2?.client_id, { first: r1?.client_id, second: r2?.client_id });
    await useTools(client);
  } else {
    const provider = newProvider({ metadataURL });
    let client;
    try {
      client = await connect(provider, false);
    } catch (err) {
      fail('cimd authorization', err);
    }
    const auth = new URL(provider.authorizeURLs[0]);
    step('cimd authorization', provider.codes.length === 1 && auth.searchParams.get('client_id') === metadataURL, {
      registration: registration(provider.savedClients[0]),
      saves: provider.savedClients.length,
      authorizeClientId: auth.searchParams.get('client_id'),
      resource: auth.searchParams.get('resource'),
      method: auth.searchParams.get('code_challenge_method'),
      consent: provider.consentPages.map(consentDetails)[0],
    });
    await useTools(client);
  }
  finish(steps.every((s) => s.ok) ? 0 : 1);
} catch (err) {
  fail('unexpected', err);
}
