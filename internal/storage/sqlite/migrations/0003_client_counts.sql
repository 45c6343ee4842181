-- Client counts per origin, kept by triggers, so that the registration
-- caps (registration.max_clients for RFC 7591 clients,
-- registration.cimd.max_clients for metadata-document clients) cost one
-- row read instead of a scan of every client (Store.CountClients). Keep
-- in step with internal/storage/postgres/migrations/0003_client_counts.sql.
--
-- The migration runs in one write transaction (BEGIN IMMEDIATE), so no
-- client is inserted or deleted between the initial count and the
-- triggers.

CREATE TABLE client_counts (
	origin TEXT PRIMARY KEY,
	n      INTEGER NOT NULL DEFAULT 0
) STRICT;

INSERT INTO client_counts (origin, n) SELECT origin, count(*) FROM clients GROUP BY origin;

CREATE TRIGGER clients_count_insert AFTER INSERT ON clients
BEGIN
	INSERT INTO client_counts (origin, n) VALUES (NEW.origin, 1)
		ON CONFLICT (origin) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER clients_count_delete AFTER DELETE ON clients
BEGIN
	UPDATE client_counts SET n = n - 1 WHERE origin = OLD.origin;
END;

-- No code path changes a client's origin today; an update that did would
-- otherwise leave both counts wrong for good.
CREATE TRIGGER clients_count_origin AFTER UPDATE OF origin ON clients
	WHEN OLD.origin <> NEW.origin
BEGIN
	UPDATE client_counts SET n = n - 1 WHERE origin = OLD.origin;
	INSERT INTO client_counts (origin, n) VALUES (NEW.origin, 1)
		ON CONFLICT (origin) DO UPDATE SET n = n + 1;
END;
