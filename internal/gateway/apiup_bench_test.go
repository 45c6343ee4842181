package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/openapi"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/testissuer"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// BenchmarkOpenAPIToolCall measures one read through an OpenAPI route
// (issue 15): "direct" is the plain HTTP GET a client of the API makes,
// "gateway-openapi" the same request as an MCP tools/call through the
// gateway (JWT verification, policy, audit on SQLite, the in-process MCP
// server, argument validation, the request built from the document, the
// exchanged token from the cache), in the same run. The added latency is
// the difference of the p50-ns; cpu-ns/op counts the whole process (client
// and API included).
func BenchmarkOpenAPIToolCall(b *testing.B) {
	pet := []byte(`{"id":"rex","name":"Rex","tag":"dog"}`)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(pet)
	}))
	defer api.Close()
	te := &tokenEndpoint{}
	teSrv := httptest.NewServer(te)
	defer teSrv.Close()

	doc, err := openapi.Load([]byte(petsDoc))
	if err != nil {
		b.Fatal(err)
	}
	tools, _, err := doc.Tools(openapi.Options{Scopes: openapi.ScopeRules{Read: []string{"fake:read"}, Write: []string{"fake:write"}}})
	if err != nil {
		b.Fatal(err)
	}
	as := testissuer.New(b)
	gwSrv := httptest.NewServer(nil)
	defer gwSrv.Close()
	st, err := sqlite.Open(b.Context(), sqlite.Options{Path: filepath.Join(b.TempDir(), "bench.db"), Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	g, err := New(Options{
		Issuer: as.URL,
		Routes: []Route{{Name: "pets", URL: gwSrv.URL + "/pets/mcp", Scopes: []string{"fake:read"},
			Upstream: Upstream{API: &API{Tools: tools, BaseURL: api.URL + "/v1", Exchange: &Exchange{
				Exchanger: &rs.Exchanger{TokenURL: teSrv.URL + "/token", ClientID: "gw-client", ClientSecret: "gw-secret"},
				Resource:  "https://api.example/",
			}}}}},
		Audit: st,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	gwSrv.Config.Handler = g

	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	b.Run("direct", func(b *testing.B) {
		get := func() []byte {
			req, _ := http.NewRequest(http.MethodGet, api.URL+"/v1/pets/rex", nil)
			req.Header.Set("Authorization", "Bearer api-token")
			req.Header.Set("Accept", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return out
		}
		for range 200 {
			get()
		}
		lat := make(latencies, 0, b.N)
		b.ResetTimer()
		c0 := cpuTime()
		for b.Loop() {
			start := time.Now()
			out := get()
			lat = append(lat, time.Since(start))
			if !bytes.Equal(out, pet) {
				b.Fatalf("API answered %s", out)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		lat.report(b)
	})
	b.Run("gateway-openapi", func(b *testing.B) {
		h := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}}
		h.Set("Authorization", "Bearer "+as.Token(b, gwSrv.URL+"/pets/mcp", "alice", "fake:read", nil))
		c := &benchClient{hc: hc, url: gwSrv.URL + "/pets/mcp", header: h}
		c.session(b)
		call := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"getPet","arguments":{"petId":"rex"}}}`)
		for range 200 {
			c.post(b, call)
		}
		lat := make(latencies, 0, b.N)
		b.ResetTimer()
		c0 := cpuTime()
		for b.Loop() {
			start := time.Now()
			out := c.post(b, call)
			lat = append(lat, time.Since(start))
			if !bytes.Contains(out, []byte(`Rex`)) || bytes.Contains(out, []byte(`"isError":true`)) {
				b.Fatalf("tools/call answered %s", out)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		lat.report(b)
		if n := len(te.requests()); n != 1 {
			b.Fatalf("token exchanges = %d, want 1 (cached)", n)
		}
	})
}
