-- The first schema of the trading bot. See docs/storage.md.
--
-- Units: money is BIGINT micro-dollars (*_micros), contract counts are BIGINT
-- hundredths of a contract (*_centi), probabilities and fractions are double
-- precision. Every time is timestamptz (microseconds, UTC); bus nanosecond
-- timestamps are truncated to the microsecond when written.
--
-- market_snapshots, book_deltas, portfolio_snapshots and audit_trail are the
-- time-series tables: their unique keys include ts so that TimescaleDB can turn
-- them into hypertables, and no foreign key points at them (none points
-- anywhere: rows arrive from independent services in any order).

CREATE TABLE markets (
    ticker             text PRIMARY KEY,
    event              text NOT NULL,
    series             text NOT NULL,
    title              text NOT NULL DEFAULT '',
    status             text NOT NULL,
    strike_type        text NOT NULL DEFAULT '',
    floor_strike       double precision,
    cap_strike         double precision,
    close_time         timestamptz NOT NULL,
    mutually_exclusive boolean NOT NULL DEFAULT false,
    fee_type           text NOT NULL DEFAULT 'quadratic',
    fee_multiplier     text NOT NULL DEFAULT '1',
    price_ranges       jsonb NOT NULL DEFAULT '[]',
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX markets_event_idx ON markets (event);
CREATE INDEX markets_series_idx ON markets (series);

CREATE TABLE market_snapshots (
    ts       timestamptz NOT NULL,
    market   text NOT NULL,
    seq      bigint NOT NULL,
    yes_bids jsonb NOT NULL,
    no_bids  jsonb NOT NULL,
    PRIMARY KEY (market, ts, seq)
);

CREATE TABLE book_deltas (
    ts           timestamptz NOT NULL,
    market       text NOT NULL,
    side         text NOT NULL CHECK (side IN ('yes', 'no')),
    price_micros bigint NOT NULL,
    delta_centi  bigint NOT NULL,
    seq          bigint NOT NULL,
    PRIMARY KEY (market, ts, seq, side, price_micros)
);

CREATE TABLE signals (
    signal_id      text PRIMARY KEY,
    ts             timestamptz NOT NULL,
    strategy       text NOT NULL,
    kind           text NOT NULL,
    event          text NOT NULL,
    legs           jsonb NOT NULL,
    edge_micros    bigint NOT NULL,
    model_p        double precision NOT NULL,
    kelly_fraction double precision NOT NULL,
    confidence     double precision NOT NULL,
    ev_micros      bigint NOT NULL,
    aroc           double precision NOT NULL,
    size_centi     bigint NOT NULL,
    expires_at     timestamptz,
    reasons        text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX signals_ts_idx ON signals (ts);
CREATE INDEX signals_strategy_ts_idx ON signals (strategy, ts);

CREATE TABLE orders (
    client_order_id text PRIMARY KEY,
    order_id        text,
    intent_id       text,
    signal_id       text,
    market          text NOT NULL,
    side            text NOT NULL CHECK (side IN ('yes', 'no')),
    action          text NOT NULL CHECK (action IN ('buy', 'sell')),
    price_micros    bigint NOT NULL,
    count_centi     bigint NOT NULL,
    filled_centi    bigint NOT NULL DEFAULT 0,
    route           text NOT NULL,
    status          text NOT NULL,
    kelly_fraction  double precision,
    ev_micros       bigint,
    aroc            double precision,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_order_id_idx ON orders (order_id);
CREATE INDEX orders_signal_id_idx ON orders (signal_id);
CREATE INDEX orders_market_idx ON orders (market, created_at);
CREATE INDEX orders_open_idx ON orders (status)
    WHERE status IN ('sent', 'unknown', 'resting', 'partial');

CREATE TABLE order_events (
    id              bigserial PRIMARY KEY,
    client_order_id text NOT NULL,
    order_id        text,
    status          text NOT NULL,
    filled_centi    bigint NOT NULL DEFAULT 0,
    remaining_centi bigint NOT NULL DEFAULT 0,
    reason          text NOT NULL DEFAULT '',
    ts              timestamptz NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}',
    UNIQUE (client_order_id, status, filled_centi, ts)
);
CREATE INDEX order_events_ts_idx ON order_events (ts);

CREATE TABLE fills (
    trade_id        text PRIMARY KEY,
    order_id        text NOT NULL,
    client_order_id text NOT NULL,
    market          text NOT NULL,
    side            text NOT NULL CHECK (side IN ('yes', 'no')),
    action          text NOT NULL CHECK (action IN ('buy', 'sell')),
    price_micros    bigint NOT NULL,
    count_centi     bigint NOT NULL,
    fee_micros      bigint NOT NULL,
    is_taker        boolean NOT NULL,
    ts              timestamptz NOT NULL,
    paper           boolean NOT NULL DEFAULT false
);
CREATE INDEX fills_ts_idx ON fills (ts);
CREATE INDEX fills_client_order_id_idx ON fills (client_order_id);
CREATE INDEX fills_market_idx ON fills (market, ts);

CREATE TABLE positions (
    market              text PRIMARY KEY,
    yes_centi           bigint NOT NULL DEFAULT 0,
    no_centi            bigint NOT NULL DEFAULT 0,
    cost_micros         bigint NOT NULL DEFAULT 0,
    realized_pnl_micros bigint NOT NULL DEFAULT 0,
    fees_micros         bigint NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE portfolio_snapshots (
    ts               timestamptz PRIMARY KEY,
    cash_micros      bigint NOT NULL,
    nav_micros       bigint NOT NULL,
    peak_nav_micros  bigint NOT NULL,
    daily_pnl_micros bigint NOT NULL,
    drawdown_ppm     bigint NOT NULL,
    trading_state    text NOT NULL
);

CREATE TABLE audit_trail (
    ts      timestamptz NOT NULL,
    id      text NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    subject text NOT NULL DEFAULT '',
    reason  text NOT NULL DEFAULT '',
    detail  jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (id, ts)
);
CREATE INDEX audit_trail_subject_idx ON audit_trail (subject, ts);

-- Every fill with the order that made it and the reasoning behind it. The
-- sizing numbers are risk's (the order's, from the intent) when known, else the
-- strategy's (the signal's).
CREATE VIEW trade_log AS
SELECT
    f.trade_id,
    f.ts,
    f.paper,
    f.market,
    f.side,
    f.action,
    f.price_micros,
    f.count_centi,
    f.fee_micros,
    f.is_taker,
    f.order_id,
    f.client_order_id,
    o.intent_id,
    o.signal_id,
    o.route,
    s.strategy,
    s.kind,
    s.event,
    s.edge_micros,
    s.model_p,
    coalesce(o.kelly_fraction, s.kelly_fraction) AS kelly_fraction,
    coalesce(o.ev_micros, s.ev_micros) AS ev_micros,
    coalesce(o.aroc, s.aroc) AS aroc
FROM fills AS f
LEFT JOIN orders AS o ON o.client_order_id = f.client_order_id
LEFT JOIN signals AS s ON s.signal_id = o.signal_id;
