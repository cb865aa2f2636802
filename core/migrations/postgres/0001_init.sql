-- chatkit-engine schema, PostgreSQL flavour (Neon compatible).
--
-- Payloads are the exact wire JSON (protocol::json) kept as TEXT, never JSONB:
-- JSONB reorders keys and the client needs the original key order.
-- `seq` is the monotonic order key; an upsert keeps the row, hence its seq.
-- Runs with search_path set to the engine schema (default `chatkit`), so the
-- names below are created there, never next to the app's tables.

CREATE TABLE chat_sessions (
    seq        BIGSERIAL   NOT NULL UNIQUE,
    id         TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    title      TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    payload    TEXT        NOT NULL,
    PRIMARY KEY (user_id, id)
);

CREATE INDEX chat_sessions_user_seq ON chat_sessions (user_id, seq);

CREATE TABLE chat_messages (
    seq        BIGSERIAL   NOT NULL UNIQUE,
    id         TEXT        NOT NULL,
    thread_id  TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    item_type  TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    payload    TEXT        NOT NULL,
    PRIMARY KEY (user_id, thread_id, id),
    FOREIGN KEY (user_id, thread_id) REFERENCES chat_sessions (user_id, id) ON DELETE CASCADE
);

CREATE INDEX chat_messages_user_thread_seq ON chat_messages (user_id, thread_id, seq);

CREATE TABLE chat_attachments (
    id         TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    thread_id  TEXT,
    payload    TEXT        NOT NULL,
    metadata   TEXT,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, id)
);

CREATE TABLE chat_feedback (
    user_id    TEXT        NOT NULL,
    thread_id  TEXT        NOT NULL,
    item_id    TEXT        NOT NULL,
    kind       TEXT        NOT NULL CHECK (kind IN ('positive', 'negative')),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, thread_id, item_id),
    FOREIGN KEY (user_id, thread_id) REFERENCES chat_sessions (user_id, id) ON DELETE CASCADE
);
