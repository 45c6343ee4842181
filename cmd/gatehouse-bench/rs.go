package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
)

// rsWorker drives an MCP server behind the resource-server middleware over
// Streamable HTTP: initialize (and notifications/initialized when the
// server keeps sessions) in setup, then one tools/call per unit, each with
// the Bearer token the middleware verifies.
func (b *bench) rsWorker() func(context.Context, int, int) (op, func(), error) {
	var (
		once  sync.Once
		tok   string
		tool  string
		setup error
	)
	return func(_ context.Context, i, _ int) (op, func(), error) {
		if b.rsURL == "" {
			return nil, nil, fmt.Errorf("%w: give --rs-url", errSkip)
		}
		once.Do(func() { tok, tool, setup = b.rsPrepare() })
		if setup != nil {
			return nil, nil, setup
		}
		c, err := newConn(b.rsURL, b.timeout)
		if err != nil {
			return nil, nil, err
		}
		path, err := requestTarget(b.rsURL)
		if err != nil {
			return nil, nil, err
		}
		sess, err := b.mcpInitialize(c, path, tok)
		if err != nil {
			c.close()
			return nil, nil, err
		}
		hdr := b.mcpHeaders(tok, sess)
		args := json.RawMessage(b.rsArgs)
		id := 1
		return func() (int, error) {
			id++
			body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
				"params": map[string]any{"name": tool, "arguments": args}})
			resp, err := c.do("POST", path, hdr, body)
			if err := expect(resp, err, 200, "tools/call"); err != nil {
				return 1, err
			}
			if _, err := rpcResult(resp); err != nil {
				return 1, fmt.Errorf("tools/call: %w", err)
			}
			return 1, nil
		}, c.close, nil
	}
}

func (b *bench) mcpHeaders(tok, sess string) []string {
	h := []string{"Authorization: Bearer " + tok, "Content-Type: application/json",
		"Accept: application/json, text/event-stream", "MCP-Protocol-Version: " + b.rsProto}
	if sess != "" {
		h = append(h, "Mcp-Session-Id: "+sess)
	}
	return h
}

// rsPrepare gets the access token and the tool to call (--rs-tool, or the
// first tool the server lists). The token is --rs-token, else a user's
// from one code flow of the public client (--public-client, --username,
// --password-file) for the rs resource, else client_credentials for it
// (only where the resource accepts tokens without a user: Gatehouse's
// demo server does not).
func (b *bench) rsPrepare() (string, string, error) {
	tok := b.rsToken
	res := b.rsResource
	if res == "" {
		res = b.rsURL
	}
	switch {
	case tok != "":
	case b.pub != "" && b.username != "" && b.flavor != "hydra":
		if b.resource == "" {
			b.resource = res // the flow is for the rs resource
		}
		w, err := b.newFlowWorker(b.pub)
		if err != nil {
			return "", "", err
		}
		defer w.close()
		if _, err := w.setupFlow(); err != nil {
			return "", "", fmt.Errorf("user token for %s: %w", res, err)
		}
		tok = w.access
	case b.cc.id == "":
		return "", "", errors.New("rs_tools_call needs --rs-token, a user (--public-client, --username, --password-file) or a client_credentials client")
	default:
		c, err := b.conn()
		if err != nil {
			return "", "", err
		}
		defer c.close()
		v := url.Values{"grant_type": {"client_credentials"}}
		if b.flavor == "hydra" {
			v.Set("audience", res)
		} else {
			v.Set("resource", res)
		}
		if b.rsScope() != "" {
			v.Set("scope", b.rsScope())
		}
		if tok, err = b.mintCC(c, b.cc, v.Encode()); err != nil {
			return "", "", fmt.Errorf("token for %s: %w", res, err)
		}
	}
	tool := b.rsTool
	if tool == "" {
		c, err := newConn(b.rsURL, b.timeout)
		if err != nil {
			return "", "", err
		}
		defer c.close()
		path, _ := requestTarget(b.rsURL)
		sess, err := b.mcpInitialize(c, path, tok)
		if err != nil {
			return "", "", err
		}
		body := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`)
		resp, err := c.do("POST", path, b.mcpHeaders(tok, sess), body)
		if err := expect(resp, err, 200, "tools/list"); err != nil {
			return "", "", err
		}
		res, err := rpcResult(resp)
		if err != nil {
			return "", "", fmt.Errorf("tools/list: %w", err)
		}
		var list struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		}
		if err := json.Unmarshal(res, &list); err != nil || len(list.Tools) == 0 {
			return "", "", fmt.Errorf("tools/list: no tools: %s", res)
		}
		tool = list.Tools[0].Name
	}
	return tok, tool, nil
}

// rsScope is the scope asked for the rs token: --rs-scope when given.
func (b *bench) rsScope() string { return b.rsScopeFlag }

// mcpInitialize runs the MCP handshake and returns the session id, if the
// server assigns one.
func (b *bench) mcpInitialize(c *conn, path, tok string) (string, error) {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{
		"protocolVersion": b.rsProto, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "gatehouse-bench", "version": "1"}}})
	hdr := []string{"Authorization: Bearer " + tok, "Content-Type: application/json", "Accept: application/json, text/event-stream"}
	resp, err := c.do("POST", path, hdr, body)
	if err := expect(resp, err, 200, "initialize"); err != nil {
		return "", err
	}
	if _, err := rpcResult(resp); err != nil {
		return "", fmt.Errorf("initialize: %w", err)
	}
	sess := resp.MCPSessionID
	if sess != "" {
		note := []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		resp, err := c.do("POST", path, b.mcpHeaders(tok, sess), note)
		if err != nil {
			return "", fmt.Errorf("notifications/initialized: %w", err)
		}
		if resp.Status != 202 && resp.Status != 200 {
			return "", fmt.Errorf("notifications/initialized: HTTP %d", resp.Status)
		}
	}
	return sess, nil
}

// rpcResult returns the result of a JSON-RPC response sent as JSON or as
// a Server-Sent Events stream (the last data: event that is a response).
func rpcResult(resp response) (json.RawMessage, error) {
	payload := resp.Body
	if bytes.HasPrefix([]byte(resp.ContentType), []byte("text/event-stream")) {
		payload = nil
		for _, line := range bytes.Split(resp.Body, []byte("\n")) {
			line = bytes.TrimRight(line, "\r")
			if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				d = bytes.TrimSpace(d)
				if bytes.Contains(d, []byte(`"result"`)) || bytes.Contains(d, []byte(`"error"`)) {
					payload = d
				}
			}
		}
		if payload == nil {
			return nil, errors.New("no JSON-RPC response in the event stream")
		}
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("not a JSON-RPC response: %.200s", payload)
	}
	if r.Error != nil {
		return nil, errors.New("JSON-RPC error " + strconv.Itoa(r.Error.Code) + ": " + r.Error.Message)
	}
	if bytes.Contains(r.Result, []byte(`"isError":true`)) {
		return nil, fmt.Errorf("tool error: %.200s", r.Result)
	}
	return r.Result, nil
}
