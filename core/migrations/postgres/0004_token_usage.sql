-- Tokens spent per turn (issue 22): read per turn, per thread, per user and
-- per UTC day (the daily budget). No foreign key to chat_sessions: usage
-- outlives a deleted thread.
CREATE TABLE chat_token_usage (
    user_id       TEXT        NOT NULL,
    turn_id       TEXT        NOT NULL,
    thread_id     TEXT        NOT NULL,
    day           TEXT        NOT NULL,
    input_tokens  BIGINT      NOT NULL,
    output_tokens BIGINT      NOT NULL,
    model_calls   BIGINT      NOT NULL,
    estimated     BOOLEAN     NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, turn_id)
);
CREATE INDEX chat_token_usage_day ON chat_token_usage (user_id, day);
CREATE INDEX chat_token_usage_thread ON chat_token_usage (user_id, thread_id);
