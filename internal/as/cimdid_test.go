package as

import (
	"html"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestAdversarialCIMDClientIDCharacters (issue 20 F6): a metadata-document
// client_id (an https URL) holding a bidi override, a zero-width or other
// invisible character, a line separator, a C1 control or any other
// non-ASCII character is refused at /authorize before the document is
// fetched: no client row, no audit event (it would reach the operator's
// terminal through `client list` and `audit query`), and an error page
// that says why, never a redirect. The document behind each URL is valid,
// so nothing but the check stops it.
func TestAdversarialCIMDClientIDCharacters(t *testing.T) {
	d := newDocServer(t)
	ts := newTestServer(t, cimdOptions(d, nil))
	for _, tt := range []struct{ name, path string }{
		{"bidi override", "/\u202eclient.json"},
		{"bidi isolate", "/client\u2066.json"},
		{"zero-width space", "/cli\u200bent.json"},
		{"zero-width joiner", "/cli\u200dent.json"},
		{"line separator", "/client\u2028.json"},
		{"C1 control", "/client\u0085.json"},
		{"C1 CSI", "/client\u009b2J.json"},
		{"non-ASCII letter", "/cli\u00e9nt.json"},
		{"in the query", "/client.json?v=\u202e1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := d.URL + tt.path
			u, err := url.Parse(id)
			must(t, err)
			d.set(u.Path, docResponse{body: d.doc(tt.path, nil)})
			before := ts.snapshot(t)
			events, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Limit: 1000})
			must(t, err)

			p := newBrowser(t).get(cimdAuth(id).url(ts.URL))
			body := html.UnescapeString(p.body)
			if p.status != 400 || p.header.Get("Location") != "" || !strings.Contains(body, "must be ASCII") {
				t.Errorf("GET /authorize with client_id %q = %d (Location %q), want 400 saying the URL must be ASCII:\n%s", id, p.status, p.header.Get("Location"), body)
			}
			if n := d.count(u.Path); n != 0 {
				t.Errorf("the document was fetched %d times", n)
			}
			assertUnchanged(t, ts, before)
			after, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Limit: 1000})
			must(t, err)
			if len(after) != len(events) {
				t.Errorf("the refusal wrote %d audit events: %+v", len(after)-len(events), after[len(events):])
			}
		})
	}
}
