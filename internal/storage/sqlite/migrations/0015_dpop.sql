-- DPoP (RFC 9449, issue 18 item 1): a refresh token issued to a token
-- request with a DPoP proof is bound to that proof's key; jkt is the key's
-- JWK SHA-256 thumbprint (RFC 7638), '' for an unbound token. Rotation
-- carries it to the next token of the family.
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT NOT NULL DEFAULT '';
-- A client registered with dpop_bound_access_tokens (RFC 9449 §5.2, or
-- `gatehouse client create --dpop-bound`) gets no token without a proof.
ALTER TABLE clients ADD COLUMN dpop_bound INTEGER NOT NULL DEFAULT 0;
