package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// defaultAuditLimit is the page size when AuditQuery.Limit is zero.
const defaultAuditLimit = 100

var auditCols = []string{"id", "event_time", "type", "user_id", "client_id", "resource", "ip", "outcome", "detail"}

func scanAudit(r rowScanner) (storage.AuditEvent, error) {
	var (
		e  storage.AuditEvent
		ts int64
	)
	err := r.Scan(&e.ID, &ts, &e.Type, &e.UserID, &e.ClientID, &e.Resource, &e.IP, &e.Outcome, &e.Detail)
	if err != nil {
		return storage.AuditEvent{}, err
	}
	e.Time = fromMicros(ts)
	return e, nil
}

// AppendAudit appends e; the store assigns ID (e.ID is ignored), increasing
// with every append.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEvent) error {
	if err := s.AppendAudits(ctx, []storage.AuditEvent{e}); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// auditInsertRows is the most events one INSERT of AppendAudits carries.
// A statement per row cost as much again as the row itself; one per
// transaction would be a new statement shape for every batch size. Rows
// go in statements of 64, 32, …, 1 (the binary digits of the count), so
// there are seven shapes to keep prepared, and the largest has 512
// parameters, far below SQLite's 32,766 and PostgreSQL's 65,535.
const auditInsertRows = 64

// auditInserts[i] is the INSERT of 1<<i events.
var auditInserts = func() []string {
	row := "(" + placeholders(len(auditCols)-1) + ")"
	var qs []string
	for n := 1; n <= auditInsertRows; n *= 2 {
		qs = append(qs, "INSERT INTO audit_events ("+cols(auditCols[1:])+") VALUES "+strings.TrimSuffix(strings.Repeat(row+", ", n), ", "))
	}
	return qs
}()

// auditInsertSize is how many of n events the next INSERT carries: the
// largest power of two not above n or auditInsertRows.
func auditInsertSize(n int) int {
	return 1 << (bits.Len(uint(min(n, auditInsertRows))) - 1)
}

// AppendAudits appends es in one transaction, in order: a multi-row
// INSERT assigns IDs in the order of its rows on both dialects.
//
// IDs must also become visible in order, or a reader following the log by
// ID (`gatehouse audit tail`, AuditQuery.AfterID) moves past an ID whose
// transaction commits late and never sees that event. A Postgres sequence
// hands out IDs at insert time, not at commit, so on dialects with
// LockTable the appending transactions are serialised on the table (reads
// go on); SQLite's write transactions already are.
func (s *Store) AppendAudits(ctx context.Context, es []storage.AuditEvent) error {
	if len(es) == 0 {
		return nil
	}
	args := make([]any, 0, len(auditCols[1:])*min(len(es), auditInsertRows))
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		if s.d.LockTable != nil {
			if _, err := s.exec(ctx, tx, s.d.LockTable("audit_events")); err != nil {
				return err
			}
		}
		for rest := es; len(rest) > 0; {
			n := auditInsertSize(len(rest))
			args = args[:0]
			for _, e := range rest[:n] {
				args = append(args, micros(e.Time), auditText(e.Type), auditText(e.UserID), auditText(e.ClientID),
					auditText(e.Resource), auditText(e.IP), auditText(e.Outcome), auditText(e.Detail))
			}
			if _, err := s.exec(ctx, tx, auditInserts[bits.Len(uint(n))-1], args...); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audits: %w", err)
	}
	return nil
}

// auditText makes s storable as text on every dialect: invalid UTF-8 and
// NUL bytes become U+FFFD. Events carry what callers sent (a client_id
// from a form, a token's subject); PostgreSQL refuses both in text, and
// one such event would fail its whole batch, which under group commit
// holds other requests' events.
func auditText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// QueryAudit returns matching events in ascending ID order (descending
// with q.Newest), at most q.Limit (0 or negative: 100). Since is inclusive and Until exclusive, so
// consecutive windows neither overlap nor leave gaps. A Type ending in "."
// matches by prefix, compared exactly (not with LIKE, which SQLite folds
// to ASCII case-insensitive and which would need escaping of _ and %).
func (s *Store) QueryAudit(ctx context.Context, q storage.AuditQuery) ([]storage.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	if !q.Since.IsZero() {
		where, args = append(where, "event_time >= ?"), append(args, micros(q.Since))
	}
	if !q.Until.IsZero() {
		where, args = append(where, "event_time < ?"), append(args, micros(q.Until))
	}
	switch {
	case q.Type == "":
	case strings.HasSuffix(q.Type, "."):
		where = append(where, "substr(type, 1, ?) = ?")
		args = append(args, utf8.RuneCountInString(q.Type), q.Type)
	default:
		where, args = append(where, "type = ?"), append(args, q.Type)
	}
	if q.UserID != "" {
		where, args = append(where, "user_id = ?"), append(args, q.UserID)
	}
	if q.ClientID != "" {
		where, args = append(where, "client_id = ?"), append(args, q.ClientID)
	}
	if q.AfterID > 0 {
		where, args = append(where, "id > ?"), append(args, q.AfterID)
	}
	if q.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, q.BeforeID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	query := "SELECT " + cols(auditCols) + " FROM audit_events"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	if q.Newest {
		query += " ORDER BY id DESC LIMIT ?"
	} else {
		query += " ORDER BY id LIMIT ?"
	}
	args = append(args, limit)
	es, err := queryAll(ctx, s, s.r, scanAudit, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	return es, nil
}

// DeleteAuditBefore deletes at most limit events with event_time before
// before (through the event_time index), in one transaction. On
// PostgreSQL it waits for, and briefly holds up, AppendAudits' table lock,
// which is why the batch is bounded.
func (s *Store) DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("delete audit: limit %d is not positive", limit)
	}
	var n int64
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		var err error
		n, err = s.exec(ctx, tx, "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE event_time < ? LIMIT ?)", micros(before), limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete audit: %w", err)
	}
	return n, nil
}
