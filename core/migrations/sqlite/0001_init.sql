-- chatkit-engine schema, SQLite flavour.
--
-- Payloads are the exact wire JSON (protocol::json) kept as TEXT: never
-- reformat them in SQL, key order and nulls matter to the client.
-- Timestamps of the chat tables are microseconds since the Unix epoch (UTC).
-- `seq` is the monotonic order key (AUTOINCREMENT never reuses a value, even
-- after deletes); an upsert keeps the row, hence its seq.

CREATE TABLE chat_sessions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    title      TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    payload    TEXT    NOT NULL,
    UNIQUE (user_id, id)
);

CREATE INDEX chat_sessions_user_seq ON chat_sessions (user_id, seq);

CREATE TABLE chat_messages (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL,
    thread_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    item_type  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    payload    TEXT    NOT NULL,
    UNIQUE (user_id, thread_id, id),
    FOREIGN KEY (user_id, thread_id) REFERENCES chat_sessions (user_id, id) ON DELETE CASCADE
);

CREATE INDEX chat_messages_user_thread_seq ON chat_messages (user_id, thread_id, seq);

CREATE TABLE chat_attachments (
    id         TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    thread_id  TEXT,
    payload    TEXT    NOT NULL,
    metadata   TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
);

CREATE TABLE chat_feedback (
    user_id    TEXT    NOT NULL,
    thread_id  TEXT    NOT NULL,
    item_id    TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('positive', 'negative')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, thread_id, item_id),
    FOREIGN KEY (user_id, thread_id) REFERENCES chat_sessions (user_id, id) ON DELETE CASCADE
);

-- The task table of the existing to-do app (quoted camelCase columns are part
-- of that schema). It may already exist, so it is only created when absent.
-- `id` holds a UUID in its hyphenated text form; dates are naive UTC
-- timestamps ('YYYY-MM-DD HH:MM:SS[.ffffff]').
CREATE TABLE IF NOT EXISTS tasks (
    id          TEXT         PRIMARY KEY NOT NULL,
    title       VARCHAR(255) NOT NULL,
    description TEXT,
    priority    TEXT         NOT NULL,
    category    TEXT         NOT NULL,
    status      TEXT         NOT NULL DEFAULT 'pending',
    completed   BOOLEAN      NOT NULL DEFAULT 0,
    "dueDate"   TIMESTAMP,
    "createdAt" TIMESTAMP    NOT NULL,
    "updatedAt" TIMESTAMP    NOT NULL,
    "userId"    TEXT         NOT NULL
);

CREATE INDEX IF NOT EXISTS "ix_tasks_userId" ON tasks ("userId");
CREATE INDEX IF NOT EXISTS ix_tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS ix_tasks_priority ON tasks (priority);
CREATE INDEX IF NOT EXISTS ix_tasks_category ON tasks (category);
CREATE INDEX IF NOT EXISTS "ix_tasks_dueDate" ON tasks ("dueDate");
