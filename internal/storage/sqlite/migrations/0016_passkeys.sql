-- Passkeys (WebAuthn credentials, issue 16 item 3): a user's discoverable
-- credentials. id is the credential ID, base64url without padding (what a
-- browser's assertion names); public_key the COSE key. sign_count and
-- backup_state change at each sign-in; backup_eligible never does (the
-- WebAuthn library refuses an assertion whose flag differs).
CREATE TABLE passkeys (
	id              TEXT NOT NULL PRIMARY KEY,
	user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	public_key      BLOB NOT NULL,
	sign_count      INTEGER NOT NULL DEFAULT 0,
	transports      TEXT NOT NULL DEFAULT 'null',
	aaguid          BLOB,
	backup_eligible INTEGER NOT NULL DEFAULT 0,
	backup_state    INTEGER NOT NULL DEFAULT 0,
	name            TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL DEFAULT 0,
	last_used_at    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX passkeys_user ON passkeys (user_id, created_at);
