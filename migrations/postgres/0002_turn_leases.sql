-- Turn leases: one row per thread with a running turn, so that one turn per
-- thread holds across every replica on this database (also through a
-- transaction-mode pooler, where a session-level advisory lock cannot be held
-- between statements).
--
-- `owner` names the replica and the turn that holds the lease; `expires_at`
-- is set from the database's clock (now()), never a replica's, and pushed
-- forward while the turn runs. A lease whose replica died simply expires and
-- the next turn takes it over in the same statement that would insert it.
-- No foreign key to chat_sessions: a new thread is leased before it is saved.

CREATE TABLE chat_turn_leases (
    user_id    TEXT        NOT NULL,
    thread_id  TEXT        NOT NULL,
    owner      TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);
