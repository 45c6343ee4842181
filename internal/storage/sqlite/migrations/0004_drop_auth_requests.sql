-- Pending authorization requests are no longer stored: they travel sealed
-- in the login and consent forms, so anonymous /authorize requests cost
-- no rows (issue 11 F4). Requests pending during the upgrade start again.
DROP TABLE auth_requests;
