-- Risk's trading state (the kill switch, operator halts), kept across restarts of
-- risk and of Redis: one row, the state machine's record as JSON.
CREATE TABLE trading_state (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    record     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Risk's decision on every signal, keyed by the signal: a redelivered signal
-- finds its decision here, and an approved one its intent (to republish, never
-- to decide twice).
CREATE TABLE risk_decisions (
    signal_id  text PRIMARY KEY,
    ts         timestamptz NOT NULL,
    approved   boolean NOT NULL,
    reason     text NOT NULL,
    detail     text NOT NULL DEFAULT '',
    intent_id  text NOT NULL DEFAULT '',
    intent     bytea,
    expires_at timestamptz
);
CREATE INDEX risk_decisions_ts_idx ON risk_decisions (ts);
CREATE INDEX risk_decisions_open_idx ON risk_decisions (expires_at) WHERE approved;

-- Markets settled while we held them (execution writes, from the exchange's
-- settlements); the ledger replays fills, then these.
CREATE TABLE settlements (
    market     text PRIMARY KEY,
    result     text NOT NULL CHECK (result IN ('yes', 'no')),
    settled_at timestamptz NOT NULL,
    paper      boolean NOT NULL DEFAULT false
);
