-- Claim values an upstream OpenID provider gave a user at their last
-- sign-in there (issue 14 item 3): the claims named in the provider's
-- configuration, for the claim conditions of scope policies. Replaced at
-- each sign-in, like upstream_groups; one row per value.
CREATE TABLE upstream_claims (
	user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	provider    TEXT NOT NULL,
	claim_name  TEXT NOT NULL,
	claim_value TEXT NOT NULL,
	updated_at  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, provider, claim_name, claim_value)
) STRICT;
