-- Runs paused on the user's confirmation (a tool that needs approval).
-- `payload` is the paused run (PausedRun JSON plus what the confirmation
-- showed); `status` goes from 'pending' to 'approved' or 'declined' exactly
-- once (a conditional UPDATE), so a second click, on any replica, changes
-- nothing. Rows belong to their user like every other engine row.
CREATE TABLE chat_approvals (
    id         TEXT        NOT NULL,
    user_id    TEXT        NOT NULL,
    thread_id  TEXT        NOT NULL,
    item_id    TEXT        NOT NULL,
    status     TEXT        NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'approved', 'declined')),
    payload    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, id),
    FOREIGN KEY (user_id, thread_id) REFERENCES chat_sessions (user_id, id) ON DELETE CASCADE
);
