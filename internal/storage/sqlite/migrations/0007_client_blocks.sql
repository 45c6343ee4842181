-- Operator bans of client ID metadata documents (issue 20 F9): a blocked
-- document is never fetched or used again.
CREATE TABLE client_blocks (
	target     TEXT PRIMARY KEY,
	host       INTEGER NOT NULL DEFAULT 0,
	reason     TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL DEFAULT 0
) STRICT;
