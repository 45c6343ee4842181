// preload-auth.mjs adds `Authorization: Bearer <token>` to every HTTP
// request a Node process makes to one origin. The MCP conformance CLI's
// `server` mode sends no token (INTEROP.md §3); conformance_server_test.go
// obtains a real one through the authorization code flow and loads this
// file into the CLI with NODE_OPTIONS=--import <abs path>/preload-auth.mjs.
//
// Environment:
//   GATEHOUSE_PRELOAD_TOKEN   the access token
//   GATEHOUSE_PRELOAD_ORIGIN  the origin it is for, e.g. http://127.0.0.1:8081
//
// How: undici keeps its global dispatcher under a global symbol shared by
// every copy of undici in the process, so one dispatcher set here is used
// both by Node's built-in fetch (the undici bundled with Node 22, used by
// the MCP SDK's transports) and by the npm `undici` package the CLI imports
// for its raw requests (`request` from undici 7), and node:http's
// request for the few it sends that way (patched below). The npm package is a
// dependency of @modelcontextprotocol/conformance and resolves from this
// file's node_modules. Requests to any other origin, and requests that
// already carry an Authorization header, are left alone.
//
// It prints one line to stderr when loaded, and one per request it
// decorated when GATEHOUSE_PRELOAD_DEBUG=1; never the token.

import http from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import { Agent, setGlobalDispatcher } from 'undici';

const token = process.env.GATEHOUSE_PRELOAD_TOKEN;
const rawOrigin = process.env.GATEHOUSE_PRELOAD_ORIGIN;
if (!token || !rawOrigin) {
  throw new Error('preload-auth.mjs: GATEHOUSE_PRELOAD_TOKEN and GATEHOUSE_PRELOAD_ORIGIN must be set');
}
const origin = new URL(rawOrigin).origin;
const debug = process.env.GATEHOUSE_PRELOAD_DEBUG === '1';
const value = `Bearer ${token}`;

// hasAuthorization reports whether headers (in any form undici accepts)
// already carry an Authorization header.
function hasAuthorization(headers) {
  if (headers == null) return false;
  if (Array.isArray(headers)) {
    // Flat [name, value, …] or [[name, value], …].
    if (headers.length > 0 && Array.isArray(headers[0])) {
      return headers.some(([k]) => String(k).toLowerCase() === 'authorization');
    }
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === 'authorization') return true;
    }
    return false;
  }
  if (typeof headers[Symbol.iterator] === 'function') {
    for (const [k] of headers) {
      if (String(k).toLowerCase() === 'authorization') return true;
    }
    return false;
  }
  return Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
}

// withAuthorization returns a copy of headers with the Authorization
// header added, in the same form.
function withAuthorization(headers) {
  if (headers == null) return { authorization: value };
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) return [...headers, ['authorization', value]];
    return [...headers, 'authorization', value];
  }
  if (typeof headers[Symbol.iterator] === 'function') {
    return [...Array.from(headers, ([k, v]) => [k, v]), ['authorization', value]];
  }
  return { ...headers, authorization: value };
}

class BearerAgent extends Agent {
  dispatch(opts, handler) {
    let target = '';
    try {
      target = new URL(String(opts.origin)).origin;
    } catch {
      // Not a URL: not our origin.
    }
    if (target === origin && !hasAuthorization(opts.headers)) {
      if (debug) process.stderr.write(`preload-auth: bearer added to ${opts.method} ${target}${opts.path}\n`);
      opts = { ...opts, headers: withAuthorization(opts.headers) };
    }
    return super.dispatch(opts, handler);
  }
}

setGlobalDispatcher(new BearerAgent());

// The CLI's SEP-2243 header scenarios post with node:http's request
// (options object, no undici): decorate those too.
const httpRequest = http.request;
http.request = function request(options, ...rest) {
  if (options && typeof options === 'object' && !(options instanceof URL)) {
    const host = options.hostname ?? options.host;
    const target = host ? `http://${host.includes(':') ? `[${host}]` : host}${options.port ? `:${options.port}` : ''}` : '';
    let same = false;
    try {
      same = new URL(target).origin === origin;
    } catch {
      // Not a URL: not our origin.
    }
    if (same && !hasAuthorization(options.headers)) {
      if (debug) process.stderr.write(`preload-auth: bearer added to ${options.method} ${target}${options.path} (node:http)\n`);
      options = { ...options, headers: withAuthorization(options.headers) };
    }
  }
  return httpRequest.call(this, options, ...rest);
};
syncBuiltinESMExports();
process.stderr.write(`preload-auth: bearer token for ${origin}\n`);
