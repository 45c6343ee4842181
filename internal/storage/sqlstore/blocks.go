package sqlstore

import (
	"context"
	"fmt"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var blockCols = []string{"target", "host", "reason", "created_at"}

var blockUpsert = insertSQL("client_blocks", blockCols) +
	" ON CONFLICT (target) DO UPDATE SET " + excludedSQL(blockCols[1:])

func scanBlock(r rowScanner) (storage.ClientBlock, error) {
	var (
		b       storage.ClientBlock
		host    int64
		created int64
	)
	if err := r.Scan(&b.Target, &host, &b.Reason, &created); err != nil {
		return storage.ClientBlock{}, err
	}
	b.Host = host != 0
	b.CreatedAt = fromMicros(created)
	return b, nil
}

// PutClientBlock creates or replaces the block of b.Target.
func (s *Store) PutClientBlock(ctx context.Context, b storage.ClientBlock) error {
	if _, err := s.exec(ctx, s.w, blockUpsert, b.Target, boolInt(b.Host), b.Reason, micros(b.CreatedAt)); err != nil {
		return fmt.Errorf("put client block: %w", err)
	}
	return nil
}

// DeleteClientBlock lifts the block of target; storage.ErrNotFound if
// there is none.
func (s *Store) DeleteClientBlock(ctx context.Context, target string) error {
	if err := errNotFoundIfZero(s.exec(ctx, s.w, "DELETE FROM client_blocks WHERE target = ?", target)); err != nil {
		return fmt.Errorf("delete client block: %w", err)
	}
	return nil
}

// ListClientBlocks returns every block ordered by target.
func (s *Store) ListClientBlocks(ctx context.Context) ([]storage.ClientBlock, error) {
	bs, err := queryAll(ctx, s, s.r, scanBlock, "SELECT "+cols(blockCols)+" FROM client_blocks ORDER BY target")
	if err != nil {
		return nil, fmt.Errorf("list client blocks: %w", err)
	}
	return bs, nil
}
