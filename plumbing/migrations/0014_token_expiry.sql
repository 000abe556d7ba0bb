-- A token may expire: the console's sessions last one long shift (console/session.py),
-- whatever the browser does with its cookie. NULL: until revoked (tokens for programs).
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
