-- Client counts per origin, kept by triggers, so that the registration
-- caps (registration.max_clients for RFC 7591 clients,
-- registration.cimd.max_clients for metadata-document clients) cost one
-- row read instead of a scan of every client (Store.CountClients). Keep
-- in step with internal/storage/sqlite/migrations/0003_client_counts.sql.
--
-- Inserts and deletes of one origin queue on its count row until they
-- commit; clients are created at registration rate, so that is cheap.

-- No client may be inserted or deleted between the initial count and the
-- triggers: block writers (not readers) until this migration commits.
LOCK TABLE clients IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE client_counts (
	origin TEXT PRIMARY KEY,
	n      BIGINT NOT NULL DEFAULT 0
);

INSERT INTO client_counts (origin, n) SELECT origin, count(*) FROM clients GROUP BY origin;

CREATE FUNCTION client_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('DELETE', 'UPDATE') THEN
		UPDATE client_counts SET n = n - 1 WHERE origin = OLD.origin;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		INSERT INTO client_counts (origin, n) VALUES (NEW.origin, 1)
			ON CONFLICT (origin) DO UPDATE SET n = client_counts.n + 1;
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER clients_count AFTER INSERT OR DELETE ON clients
	FOR EACH ROW EXECUTE FUNCTION client_counts_track();

-- No code path changes a client's origin today; an update that did would
-- otherwise leave both counts wrong for good.
CREATE TRIGGER clients_count_origin AFTER UPDATE OF origin ON clients
	FOR EACH ROW WHEN (OLD.origin IS DISTINCT FROM NEW.origin)
	EXECUTE FUNCTION client_counts_track();
