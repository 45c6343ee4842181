package as

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// Reap deletes dynamic clients (registered and metadata-document ones)
// that never obtained a token within UnusedTTL of their last
// registration, or whose last token is older than IdleTTL. It deletes
// through DeleteClient, which removes their codes, grants, refresh tokens
// and consents, so nothing they held keeps working. A client that
// obtained a token within IdleTTL is never reaped. The server's GC loop
// calls it; it returns how many clients it deleted.
func (s *Server) Reap(ctx context.Context, now time.Time) (int, error) {
	defer s.clients.clear()
	cs, err := s.opts.Store.ListClients(ctx)
	if err != nil {
		return 0, fmt.Errorf("reap clients: %w", err)
	}
	n := 0
	for _, c := range cs {
		why := s.reapReason(c, now)
		if why == "" {
			continue
		}
		if err := s.opts.Store.DeleteClient(ctx, c.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, fmt.Errorf("reap client %s: %w", c.ID, err)
		}
		s.reg.cache.Forget(c.ID)
		s.audit(ctx, nil, storage.AuditEvent{Type: "client.reaped", ClientID: c.ID, Outcome: "success", Detail: why})
		n++
	}
	return n, nil
}

// reapReason says why c should be reaped at now, or "" to keep it.
func (s *Server) reapReason(c storage.Client, now time.Time) string {
	if c.Origin != storage.OriginDCR && c.Origin != storage.OriginCIMD {
		return ""
	}
	reg := &s.opts.Registration
	if c.LastUsedAt.IsZero() && c.TokenCount == 0 {
		since := c.CreatedAt
		if c.UpdatedAt.After(since) {
			since = c.UpdatedAt
		}
		if reg.UnusedTTL > 0 && !now.Before(since.Add(reg.UnusedTTL)) {
			return "never obtained a token within " + reg.UnusedTTL.String()
		}
		return ""
	}
	if reg.IdleTTL > 0 && !now.Before(c.LastUsedAt.Add(reg.IdleTTL)) {
		return "no token for " + reg.IdleTTL.String()
	}
	return ""
}
