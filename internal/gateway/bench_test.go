package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/testissuer"
)

// benchClient posts JSON-RPC to one endpoint with fixed headers.
type benchClient struct {
	hc     *http.Client
	url    string
	header http.Header
}

func (c *benchClient) post(b testing.TB, body []byte) []byte {
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	req.Header = c.header.Clone()
	resp, err := c.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("POST %s: %d %s", c.url, resp.StatusCode, out)
	}
	return out
}

// session initializes a session and returns its id.
func (c *benchClient) session(b testing.TB) string {
	req, _ := http.NewRequest(http.MethodPost, c.url, bytes.NewReader([]byte(
		`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)))
	req.Header = c.header.Clone()
	resp, err := c.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sid := resp.Header.Get(headerSessionID)
	if resp.StatusCode != http.StatusOK || sid == "" {
		b.Fatalf("initialize at %s: %d, session %q", c.url, resp.StatusCode, sid)
	}
	c.header.Set(headerSessionID, sid)
	c.header.Set(headerProtocolVersion, "2025-06-18")
	c.post(b, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	return sid
}

// BenchmarkToolCall measures one tools/call on loopback against an HTTP
// MCP upstream (the Go SDK, JSON responses), called directly and through
// the gateway (JWT verification, policy, audit on SQLite as in
// production, session mapping), in the same run; p50-ns and p99-ns are
// per-call latencies, cpu-ns/op the process's CPU time per call. The
// added latency of the gateway is the difference between the two.
// "stdio" is the same call through a stdio route to testdata/fakemcp, for
// reference; "-parallel" are concurrent clients (throughput).
func BenchmarkToolCall(b *testing.B) {
	s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Message}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
	defer up.Close()

	as := testissuer.New(b)
	gwSrv := httptest.NewUnstartedServer(nil)
	gwSrv.Start()
	defer gwSrv.Close()
	st, err := sqlite.Open(b.Context(), sqlite.Options{Path: filepath.Join(b.TempDir(), "bench.db"), Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	g, err := New(Options{
		Issuer: as.URL,
		Routes: []Route{
			{Name: "http", URL: gwSrv.URL + "/http/mcp", Upstream: Upstream{URL: up.URL, Header: http.Header{"Authorization": {"Bearer upstream"}}},
				Scopes: []string{"fake:read"}, Tools: Rules{"admin_*": {"fake:admin"}}},
			{Name: "stdio", URL: gwSrv.URL + "/stdio/mcp", Upstream: Upstream{Command: fakeMCP(b)},
				Scopes: []string{"fake:read"}, Tools: Rules{"admin_*": {"fake:admin"}}},
		},
		Audit: st,
		// Its cost is measured by running the benchmark with and without.
		AuditBeforeForward: os.Getenv("GATEHOUSE_BENCH_AUDIT_BEFORE_FORWARD") == "true",
	})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	gwSrv.Config.Handler = g

	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	jsonHeader := func() http.Header {
		return http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}}
	}
	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}`)
	run := func(b *testing.B, c *benchClient) {
		c.session(b)
		for range 200 { // warm up connections, caches and the verifier
			c.post(b, call)
		}
		lat := make(latencies, 0, b.N)
		b.ResetTimer()
		c0 := cpuTime()
		for b.Loop() {
			start := time.Now()
			out := c.post(b, call)
			lat = append(lat, time.Since(start))
			if !bytes.Contains(out, []byte("echo: hello")) {
				b.Fatalf("response %s", out)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		lat.report(b)
	}
	b.Run("direct", func(b *testing.B) {
		run(b, &benchClient{hc: hc, url: up.URL, header: jsonHeader()})
	})
	for _, route := range []string{"http", "stdio"} {
		b.Run("gateway-"+route, func(b *testing.B) {
			h := jsonHeader()
			h.Set("Authorization", "Bearer "+as.Token(b, gwSrv.URL+"/"+route+"/mcp", "alice", "fake:read", nil))
			run(b, &benchClient{hc: hc, url: gwSrv.URL + "/" + route + "/mcp", header: h})
		})
	}
	// Throughput: parallelClients sessions calling at once, each call
	// waiting for the one before it; ns/op is wall time per call. Audit
	// records of concurrent calls share their transactions.
	const parallelClients = 8
	for _, route := range []string{"http", "stdio"} {
		b.Run("gateway-"+route+"-parallel", func(b *testing.B) {
			// RunParallel starts parallelism×GOMAXPROCS goroutines, one
			// client each.
			parallelism := (parallelClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
			n := parallelism * runtime.GOMAXPROCS(0)
			clients := make(chan *benchClient, n)
			for range n {
				h := jsonHeader()
				h.Set("Authorization", "Bearer "+as.Token(b, gwSrv.URL+"/"+route+"/mcp", "alice", "fake:read", nil))
				c := &benchClient{hc: hc, url: gwSrv.URL + "/" + route + "/mcp", header: h}
				c.session(b)
				for range 50 {
					c.post(b, call)
				}
				clients <- c
			}
			b.SetParallelism(parallelism)
			b.ResetTimer()
			c0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				c := <-clients
				for pb.Next() {
					if out := c.post(b, call); !bytes.Contains(out, []byte("echo: hello")) {
						b.Errorf("response %s", out)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's CPU time: per call, what matters on a machine
// shared with other work, where wall time mostly measures the others. It
// counts the client and the HTTP upstream too, which run in this process;
// a stdio upstream runs in its own.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latencies records per-call durations and reports percentiles.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), "p99-ns")
}
