-- A resource accepts tokens without a user (client_credentials) only when
-- its operator says so: existing resources do not (issue 11, F1).
ALTER TABLE resources ADD COLUMN accept_client_credentials BIGINT NOT NULL DEFAULT 0;
