-- Refresh tokens, by the SHA-256 of their secret (the secret itself is
-- never stored). A family is one login's chain of rotated tokens.
CREATE TABLE identity_refresh_tokens (
    hash       TEXT   PRIMARY KEY,
    family     TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    tenant     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT NOT NULL DEFAULT 0,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX identity_refresh_tokens_family ON identity_refresh_tokens (family);
