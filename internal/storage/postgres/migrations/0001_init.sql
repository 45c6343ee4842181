-- Gatehouse schema, PostgreSQL flavour. Keep in step with
-- internal/storage/sqlite/migrations/0001_init.sql: the queries in
-- internal/storage/sqlstore run unchanged on both.
--
-- Times are unix microseconds UTC (0 = zero time / never); lists are JSON
-- text. Columns are BIGINT, not timestamptz, so both dialects share one
-- encoding and one set of queries.
-- Foreign keys back up the explicit cascades in DeleteClient/DeleteUser.

CREATE TABLE clients (
	id                         TEXT PRIMARY KEY,
	secret_hash                TEXT NOT NULL DEFAULT '',
	secret_expires_at          BIGINT NOT NULL DEFAULT 0,
	name                       TEXT NOT NULL DEFAULT '',
	redirect_uris              TEXT NOT NULL DEFAULT 'null',
	grant_types                TEXT NOT NULL DEFAULT 'null',
	response_types             TEXT NOT NULL DEFAULT 'null',
	token_endpoint_auth_method TEXT NOT NULL DEFAULT '',
	scopes                     TEXT NOT NULL DEFAULT 'null',
	application_type           TEXT NOT NULL DEFAULT '',
	jwks                       TEXT NOT NULL DEFAULT '',
	jwks_uri                   TEXT NOT NULL DEFAULT '',
	origin                     TEXT NOT NULL DEFAULT '',
	registration_token_hash    TEXT NOT NULL DEFAULT '',
	metadata                   TEXT NOT NULL DEFAULT '',
	created_at                 BIGINT NOT NULL DEFAULT 0,
	updated_at                 BIGINT NOT NULL DEFAULT 0,
	last_used_at               BIGINT NOT NULL DEFAULT 0,
	token_count                BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL DEFAULT '',
	created_at    BIGINT NOT NULL DEFAULT 0,
	updated_at    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE resources (
	url            TEXT PRIMARY KEY,
	name           TEXT NOT NULL DEFAULT '',
	scopes         TEXT NOT NULL DEFAULT 'null',
	default_scopes TEXT NOT NULL DEFAULT 'null',
	created_at     BIGINT NOT NULL DEFAULT 0,
	updated_at     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
	id_hash    TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	auth_time  BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT 0,
	expires_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE auth_requests (
	id                    TEXT PRIMARY KEY,
	client_id             TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
	redirect_uri          TEXT NOT NULL DEFAULT '',
	state                 TEXT NOT NULL DEFAULT '',
	scopes                TEXT NOT NULL DEFAULT 'null',
	resource              TEXT NOT NULL DEFAULT '',
	code_challenge        TEXT NOT NULL DEFAULT '',
	code_challenge_method TEXT NOT NULL DEFAULT '',
	nonce                 TEXT NOT NULL DEFAULT '',
	prompt                TEXT NOT NULL DEFAULT '',
	created_at            BIGINT NOT NULL DEFAULT 0,
	expires_at            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_requests_client_id ON auth_requests (client_id);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE auth_codes (
	hash                  TEXT PRIMARY KEY,
	client_id             TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
	user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	redirect_uri          TEXT NOT NULL DEFAULT '',
	scopes                TEXT NOT NULL DEFAULT 'null',
	resource              TEXT NOT NULL DEFAULT '',
	code_challenge        TEXT NOT NULL DEFAULT '',
	code_challenge_method TEXT NOT NULL DEFAULT '',
	nonce                 TEXT NOT NULL DEFAULT '',
	grant_id              TEXT NOT NULL DEFAULT '',
	auth_time             BIGINT NOT NULL DEFAULT 0,
	created_at            BIGINT NOT NULL DEFAULT 0,
	expires_at            BIGINT NOT NULL DEFAULT 0,
	consumed_at           BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX auth_codes_client_id ON auth_codes (client_id);
CREATE INDEX auth_codes_user_id ON auth_codes (user_id);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

-- grants.user_id is empty for client credentials, so it has no foreign
-- key; DeleteUser removes a user's grants explicitly.
CREATE TABLE grants (
	id         TEXT PRIMARY KEY,
	client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
	user_id    TEXT NOT NULL DEFAULT '',
	resource   TEXT NOT NULL DEFAULT '',
	scopes     TEXT NOT NULL DEFAULT 'null',
	auth_time  BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT 0,
	expires_at BIGINT NOT NULL DEFAULT 0,
	revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_user_id ON grants (user_id);
CREATE INDEX grants_expires_at ON grants (expires_at);

CREATE TABLE refresh_tokens (
	hash       TEXT PRIMARY KEY,
	grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
	client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
	user_id    TEXT NOT NULL DEFAULT '',
	scopes     TEXT NOT NULL DEFAULT 'null',
	resource   TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL DEFAULT 0,
	expires_at BIGINT NOT NULL DEFAULT 0,
	rotated_at BIGINT NOT NULL DEFAULT 0,
	retry      BYTEA,
	retry_key  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE consents (
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
	resource   TEXT NOT NULL,
	scopes     TEXT NOT NULL DEFAULT 'null',
	created_at BIGINT NOT NULL DEFAULT 0,
	updated_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, client_id, resource)
);
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE signing_keys (
	id           TEXT PRIMARY KEY,
	algorithm    TEXT NOT NULL,
	private_key  BYTEA,
	public_jwk   TEXT NOT NULL DEFAULT '',
	created_at   BIGINT NOT NULL DEFAULT 0,
	retired_at   BIGINT NOT NULL DEFAULT 0,
	remove_after BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE replay (
	replay_key TEXT PRIMARY KEY,
	expires_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX replay_expires_at ON replay (expires_at);

CREATE TABLE throttle (
	throttle_key TEXT PRIMARY KEY,
	failures     BIGINT NOT NULL DEFAULT 0,
	reset_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX throttle_reset_at ON throttle (reset_at);

-- An identity column never reuses ids. Ids are taken at insert, not at
-- commit, so a tailer (AuditQuery.AfterID) can in rare races see id n+1
-- before n commits; AppendAudit is a single short statement to keep that
-- window tiny.
CREATE TABLE audit_events (
	id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	event_time BIGINT NOT NULL DEFAULT 0,
	type       TEXT NOT NULL DEFAULT '',
	user_id    TEXT NOT NULL DEFAULT '',
	client_id  TEXT NOT NULL DEFAULT '',
	resource   TEXT NOT NULL DEFAULT '',
	ip         TEXT NOT NULL DEFAULT '',
	outcome    TEXT NOT NULL DEFAULT '',
	detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_event_time ON audit_events (event_time);
CREATE INDEX audit_events_type ON audit_events (type);
CREATE INDEX audit_events_user_id ON audit_events (user_id);
CREATE INDEX audit_events_client_id ON audit_events (client_id);
