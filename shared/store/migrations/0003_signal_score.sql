-- The strategy's ranking of a signal (ROI x confidence x ln(contracts)), for the dashboard.
ALTER TABLE signals ADD COLUMN score double precision NOT NULL DEFAULT 0;
