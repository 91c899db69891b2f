-- Budgets of wrong guesses at a secret (per client address, per nickname), shared so that a
-- guesser gains nothing by spreading tries over instances. Unlogged: a crash only refills
-- them.

CREATE UNLOGGED TABLE rate_buckets (
    key    text             PRIMARY KEY,
    tokens double precision NOT NULL,
    at     timestamptz      NOT NULL
);
