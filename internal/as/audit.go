package as

import (
	"context"
	"sync"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// groupCommit writes audit events in batches without giving up
// durability: every request still waits until its event is committed,
// but events that arrive while a commit is running share the next one.
// The request that finds no commit running leads: it commits what is
// pending until nothing is, then returns. No background goroutine, so a
// Server needs no Close.
type groupCommit struct {
	store    storage.Audit
	mu       sync.Mutex
	pending  []auditReq
	flushing bool
}

type auditReq struct {
	e    storage.AuditEvent
	done chan error
}

// append commits e, in a batch with concurrent callers' events.
func (g *groupCommit) append(ctx context.Context, e storage.AuditEvent) error {
	req := auditReq{e: e, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, req)
	if g.flushing {
		g.mu.Unlock()
		return <-req.done
	}
	g.flushing = true
	// Other requests' events are committed under this request's context:
	// its cancellation must not lose them.
	ctx = context.WithoutCancel(ctx)
	for {
		batch := g.pending
		g.pending = nil
		g.mu.Unlock()
		events := make([]storage.AuditEvent, len(batch))
		for i, r := range batch {
			events[i] = r.e
		}
		err := g.store.AppendAudits(ctx, events)
		for _, r := range batch {
			r.done <- err
		}
		g.mu.Lock()
		if len(g.pending) == 0 {
			g.flushing = false
			g.mu.Unlock()
			return <-req.done
		}
	}
}
