-- Groups an upstream OpenID provider gave a user at their last sign-in
-- there (issue 14 items 1 and 3): replaced at each sign-in by the
-- provider's groups claim, and kept apart from user_groups (the groups an
-- operator gave with `gatehouse user group add`) so that neither erases
-- the other. Scope policies see both.
CREATE TABLE upstream_groups (
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	provider   TEXT NOT NULL,
	group_name TEXT NOT NULL,
	updated_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, provider, group_name)
) STRICT;
