CREATE TABLE identity_tenants (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE identity_users (
    id            TEXT   PRIMARY KEY,
    tenant        TEXT   NOT NULL REFERENCES identity_tenants (id),
    email         TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    roles         TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    account_id    TEXT   NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (tenant, email)
);
-- The default tenant (identity.DefaultTenant) always exists.
INSERT INTO identity_tenants (id, name, created_at) VALUES ('demo', 'Demo', 0);
