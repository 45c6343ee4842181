-- Groups of local users, and resources' rules restricting a scope to users
-- with a group (issue 14 item 3). Numbered 0011: 0010 is another change
-- made at the same time; the runner applies each missing version on its
-- own, so the gap (and 0010 arriving after 0011) is harmless.
CREATE TABLE user_groups (
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	group_name TEXT NOT NULL,
	created_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, group_name)
) STRICT;
ALTER TABLE resources ADD COLUMN scope_policies TEXT NOT NULL DEFAULT 'null';
