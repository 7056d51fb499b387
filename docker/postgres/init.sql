-- DEPRECATED: this script is no longer used by anything.
--
-- It is the legacy schema that docker-compose ran once, when the Postgres container was first
-- created. The schema now lives in the Alembic migrations under migrations/versions/, applied by
-- `migrator upgrade` (docker-compose's `migrate` service, the Helm hook Job, `make migrate`).
-- The first migration adopts databases that this script built, without losing a row.
--
-- Kept only as a reference, and as the fixture the tests build a legacy database from:
-- tests/integration/test_adoption.py checks that the first migration yields the same schema.
-- Do not mount it into a container and do not edit it: change the schema with a new migration
-- (docs/writing-migrations.md).

CREATE TABLE IF NOT EXISTS users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    google_id VARCHAR(255) UNIQUE NOT NULL,
    email VARCHAR(255) NOT NULL,
    display_name VARCHAR(255),
    profile_picture TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_sign_in_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE UNIQUE INDEX IF NOT EXISTS users_google_id_idx ON users (google_id);
CREATE INDEX IF NOT EXISTS users_email_idx ON users (email);

CREATE TABLE IF NOT EXISTS sessions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token VARCHAR(512) UNIQUE NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ NOT NULL,
    last_activity_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    user_agent TEXT,
    ip_address_hash VARCHAR(64)
);

CREATE UNIQUE INDEX IF NOT EXISTS sessions_token_idx ON sessions (token);
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE IF NOT EXISTS bookmarks (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    title VARCHAR(500),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT unique_user_url UNIQUE (user_id, url)
);

CREATE INDEX IF NOT EXISTS bookmarks_user_id_created_at_idx ON bookmarks (user_id, created_at DESC);
