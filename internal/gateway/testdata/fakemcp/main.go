// Command fakemcp is a tiny MCP server on standard input and output for
// the gateway's tests, with tools that misbehave on request: crash, hang,
// flood (an endless line), garbage (lines that are not JSON).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

var (
	mu  sync.Mutex
	out = bufio.NewWriter(os.Stdout)

	// initParams are the params of the initialize received, if any.
	initParams json.RawMessage
	// answers are the waiting server requests (tool "ask"), by id.
	answers = map[string]chan json.RawMessage{}
)

func send(v any) {
	b, _ := json.Marshal(v)
	mu.Lock()
	defer mu.Unlock()
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func result(id json.RawMessage, r any) {
	send(map[string]any{"jsonrpc": "2.0", "id": id, "result": r})
}

func text(id json.RawMessage, s string) {
	result(id, map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}})
}

func main() {
	if os.Getenv("FAKEMCP_EXIT_AT_START") != "" {
		fmt.Fprintln(os.Stderr, "fakemcp: exiting at start as asked")
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "fakemcp: started pid %d\n", os.Getpid())
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			var req request
			if json.Unmarshal(line, &req) != nil {
				fmt.Fprintf(os.Stderr, "fakemcp: bad line %q\n", line)
			} else if req.Method != "" && len(req.ID) > 0 {
				go handle(req)
			} else if req.Method == "" && len(req.ID) > 0 {
				mu.Lock()
				ch := answers[string(req.ID)]
				mu.Unlock()
				if ch != nil {
					ch <- line
				}
			} else if req.Method == "notifications/cancelled" {
				fmt.Fprintf(os.Stderr, "fakemcp: cancelled %s\n", req.Params)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fakemcp: stdin closed, exiting")
			return
		}
	}
}

func handle(req request) {
	switch req.Method {
	case "server/discover":
		// FAKEMCP_STATELESS: the server speaks MCP 2026-07-28 itself.
		if os.Getenv("FAKEMCP_STATELESS") == "" {
			send(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32601, "message": "Method not found: server/discover"}})
			return
		}
		result(req.ID, map[string]any{
			"supportedVersions": []string{"2026-07-28"},
			"capabilities":      map[string]any{"tools": map[string]any{"listChanged": true}},
			"_meta":             map[string]any{"io.modelcontextprotocol/serverInfo": map[string]any{"name": "fakemcp-stateless", "version": "1.0.0"}},
		})
	case "initialize":
		mu.Lock()
		initParams = req.Params
		mu.Unlock()
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		json.Unmarshal(req.Params, &p)
		if p.ProtocolVersion == "" {
			p.ProtocolVersion = "2025-06-18"
		}
		result(req.ID, map[string]any{
			"protocolVersion": p.ProtocolVersion,
			"capabilities":    map[string]any{"tools": map[string]any{}, "prompts": map[string]any{}, "resources": map[string]any{}, "logging": map[string]any{}},
			"serverInfo":      map[string]any{"name": "fakemcp", "version": "1.0.0"},
		})
	case "ping":
		result(req.ID, map[string]any{})
	case "tools/list":
		var tools []any
		for _, n := range []string{"echo", "env", "admin_reset", "admin_wipe", "crash", "hang", "flood", "garbage", "slow", "progress", "notify", "big"} {
			tools = append(tools, map[string]any{"name": n, "description": "fake " + n, "inputSchema": map[string]any{"type": "object"}})
		}
		result(req.ID, map[string]any{"tools": tools})
	case "prompts/list":
		result(req.ID, map[string]any{"prompts": []any{map[string]any{"name": "greet"}, map[string]any{"name": "secret_prompt"}}})
	case "prompts/get":
		result(req.ID, map[string]any{"messages": []any{map[string]any{"role": "user", "content": map[string]any{"type": "text", "text": "hello"}}}})
	case "resources/list":
		result(req.ID, map[string]any{"resources": []any{
			map[string]any{"uri": "fake://public/a", "name": "a"},
			map[string]any{"uri": "fake://private/b", "name": "b"},
		}})
	case "resources/read":
		var p struct {
			URI string `json:"uri"`
		}
		json.Unmarshal(req.Params, &p)
		result(req.ID, map[string]any{"contents": []any{map[string]any{"uri": p.URI, "text": "content of " + p.URI}}})
	case "tools/call":
		call(req)
	default:
		send(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32601, "message": "Method not found: " + req.Method}})
	}
}

// logCall appends a line for an executed tool call to the file named by
// FAKEMCP_CALL_LOG, if set: tests count what the upstream really ran.
func logCall(line string) {
	path := os.Getenv("FAKEMCP_CALL_LOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakemcp: call log: %v\n", err)
		return
	}
	defer f.Close()
	f.Write([]byte(line + "\n"))
}

func call(req request) {
	var p struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
		Meta      struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	json.Unmarshal(req.Params, &p)
	arg := func(k string) string { s, _ := p.Arguments[k].(string); return s }
	logCall(p.Name + " " + arg("message"))
	switch p.Name {
	case "echo", "admin_reset", "admin_wipe":
		text(req.ID, p.Name+": "+arg("message"))
	case "env":
		env := os.Environ()
		sort.Strings(env)
		text(req.ID, strings.Join(env, "\n"))
	case "crash":
		fmt.Fprintln(os.Stderr, "fakemcp: crashing as asked")
		os.Exit(3)
	case "hang":
		fmt.Fprintln(os.Stderr, "fakemcp: hanging as asked")
		select {}
	case "flood":
		mu.Lock()
		chunk := []byte(strings.Repeat("x", 1<<16))
		for {
			if _, err := os.Stdout.Write(chunk); err != nil {
				os.Exit(4)
			}
		}
	case "garbage":
		mu.Lock()
		for i := 0; i < 100; i++ {
			fmt.Fprintf(out, "this is not JSON %d\n", i)
		}
		out.Flush()
		mu.Unlock()
	case "slow":
		ms, _ := p.Arguments["ms"].(float64)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		text(req.ID, "slow done")
	case "progress":
		for i := 1; i <= 3; i++ {
			if len(p.Meta.ProgressToken) > 0 {
				send(map[string]any{"jsonrpc": "2.0", "method": "notifications/progress", "params": map[string]any{"progressToken": p.Meta.ProgressToken, "progress": i, "total": 3}})
			}
			time.Sleep(20 * time.Millisecond)
		}
		text(req.ID, "progress done")
	case "notify":
		send(map[string]any{"jsonrpc": "2.0", "method": "notifications/message", "params": map[string]any{"level": "info", "data": "note from fakemcp"}})
		text(req.ID, "notified")
	case "big":
		text(req.ID, strings.Repeat("b", 1<<20))
	// Not listed by tools/list (tests count the listed tools):
	case "pid":
		text(req.ID, strconv.Itoa(os.Getpid()))
	case "initparams":
		mu.Lock()
		ip := initParams
		mu.Unlock()
		if ip == nil {
			ip = json.RawMessage("none")
		}
		text(req.ID, string(ip))
	case "ask":
		// Asks the client for a sampling and returns its answer.
		id := `"ask-` + strconv.Itoa(os.Getpid()) + `"`
		ch := make(chan json.RawMessage, 1)
		mu.Lock()
		answers[id] = ch
		mu.Unlock()
		send(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "method": "sampling/createMessage", "params": map[string]any{"messages": []any{}, "maxTokens": 1}})
		select {
		case a := <-ch:
			text(req.ID, "answer: "+strings.TrimSpace(string(a)))
		case <-time.After(5 * time.Second):
			text(req.ID, "no answer")
		}
	default:
		send(map[string]any{"jsonrpc": "2.0", "id": req.ID, "error": map[string]any{"code": -32602, "message": "Unknown tool: " + p.Name}})
	}
}
