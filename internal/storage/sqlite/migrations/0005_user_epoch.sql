-- Ending what a user or a client holds (issue 20 F2, F4): a user's epoch
-- voids sessions of an earlier one, a disabled user cannot sign in, and
-- tokens issued before a client's reset are void.
ALTER TABLE users ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN user_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN reset_at INTEGER NOT NULL DEFAULT 0;
