-- A signing key can be withdrawn in an emergency (issue 20, F7): the row
-- stays as a tombstone, with its private key deleted, until the time it
-- would have stopped being published anyway (remove_after). 0 means "not
-- withdrawn".
ALTER TABLE signing_keys ADD COLUMN withdrawn_at BIGINT NOT NULL DEFAULT 0;
