-- DPoP (RFC 9449, issue 18 item 1): a refresh token issued to a token
-- request with a DPoP proof is bound to that proof's key; jkt is the key's
-- JWK SHA-256 thumbprint (RFC 7638), '' for an unbound token. Rotation
-- carries it to the next token of the family.
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT NOT NULL DEFAULT '';
