-- Runs paused on the user's confirmation (a tool that needs approval).
-- `payload` is the paused run (PausedRun JSON plus what the confirmation
-- showed); `status` goes from 'pending' to 'approved' or 'declined' exactly
-- once (a conditional UPDATE), so a second click changes nothing. Times are
-- microseconds since the epoch, as in 0001.
CREATE TABLE chat_approvals (
    id         TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    thread_id  TEXT    NOT NULL,
    item_id    TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'approved', 'declined')),
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, id),
    FOREIGN KEY (user_id, thread_id) REFERENCES chat_sessions (user_id, id) ON DELETE CASCADE
);
