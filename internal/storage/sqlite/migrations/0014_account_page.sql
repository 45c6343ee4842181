-- The account page (issue 16 item 2) shows each connected client's last
-- tool calls: the newest few events of one user × client × type. The
-- separate user_id and client_id indexes would scan every event of the
-- user or client; this one reads just those rows, newest first.
CREATE INDEX audit_events_user_client ON audit_events (user_id, client_id, type, id);
