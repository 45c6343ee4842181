-- Users provisioned by a sign-in at an upstream OpenID provider (issue 14
-- item 1): the provider's name and its subject are the identity, never an
-- email address.
CREATE TABLE upstream_identities (
	provider   TEXT NOT NULL,
	subject    TEXT NOT NULL,
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (provider, subject)
) STRICT;
CREATE INDEX upstream_identities_user ON upstream_identities (user_id);
