-- Ordering's own model of the catalog's products (package products),
-- portable SQL: SQLite and PostgreSQL alike.

-- Each product as the newest catalog event (or seed page) told it. Money
-- is minor units and a currency; version is the catalog's version of the
-- product, so that an older or repeated event never moves it backwards;
-- position is the catalog position it was told at (0 if unknown).
CREATE TABLE IF NOT EXISTS ordering_product_prices (
	product_id TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	amount     BIGINT NOT NULL,
	currency   TEXT NOT NULL,
	version    BIGINT NOT NULL,
	position   BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- How far the model has read the catalog: one row. seeded says the
-- catalog's products were copied once (query.catalog.products) as of
-- seed_position; applied is the highest catalog position its consumer
-- applied, in order.
CREATE TABLE IF NOT EXISTS ordering_catalog_feed (
	id            INTEGER PRIMARY KEY,
	seeded        BOOLEAN NOT NULL,
	seed_position BIGINT NOT NULL,
	applied       BIGINT NOT NULL
);

INSERT INTO ordering_catalog_feed (id, seeded, seed_position, applied) VALUES (1, FALSE, 0, 0)
	ON CONFLICT (id) DO NOTHING;
