-- Grants and consents remember the user's epoch they were made in: one a
-- request racing a password change or revocation commits after it is void
-- (issue 20 F2).
ALTER TABLE grants ADD COLUMN user_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE consents ADD COLUMN user_epoch INTEGER NOT NULL DEFAULT 0;
