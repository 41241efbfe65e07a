-- What a replay needs besides snapshots and deltas (see docs/storage.md):
-- the exchange's public trades (paper makers fill only when trades reach them),
-- every change of trust in a book (a replay must not trade on a book that live
-- ingest had condemned), and which market-data batch each row was published in
-- (``batch``: the time ingest published it, ns; 0 for rows recorded before):
-- a replay hands the services the same batches they read live.

ALTER TABLE market_snapshots ADD COLUMN batch bigint NOT NULL DEFAULT 0;
ALTER TABLE book_deltas ADD COLUMN batch bigint NOT NULL DEFAULT 0;

CREATE TABLE market_trades (
    ts                timestamptz NOT NULL,
    market            text NOT NULL,
    trade_id          text NOT NULL,
    taker_side        text NOT NULL CHECK (taker_side IN ('yes', 'no')),
    yes_price_micros  bigint NOT NULL,
    count_centi       bigint NOT NULL,
    exchange_ts       timestamptz,
    batch             bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (market, ts, trade_id)
);

CREATE TABLE book_status (
    ts      timestamptz NOT NULL,
    market  text NOT NULL,
    state   text NOT NULL CHECK (state IN ('valid', 'invalid', 'stale')),
    reason  text NOT NULL DEFAULT '',
    batch   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (market, ts, state)
);
