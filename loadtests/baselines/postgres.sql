-- The Postgres baseline's own tables (loadtests/baselines/postgres.py), applied idempotently at start.
-- Never part of persistence/migrations: the platform does not depend on them.
-- Times are epoch seconds (double precision) from the gateway's clock, as the engine uses its host's clock.

CREATE TABLE IF NOT EXISTS bl_pg_events (
    event_id  text PRIMARY KEY,
    org_id    text NOT NULL
);

-- A row per seat: a seat is free when it is not sold and carries no hold, or only one whose time has passed.
CREATE TABLE IF NOT EXISTS bl_pg_seats (
    event_id         text NOT NULL,
    seat_index       integer NOT NULL,
    seat_id          text NOT NULL,
    hold_id          text,
    hold_expires_at  double precision,
    sold             boolean NOT NULL DEFAULT false,
    PRIMARY KEY (event_id, seat_index),
    UNIQUE (event_id, seat_id)
);
-- availability reads only the seats that were ever claimed
CREATE INDEX IF NOT EXISTS bl_pg_seats_claimed_idx ON bl_pg_seats (event_id, seat_index)
    WHERE sold OR hold_id IS NOT NULL;

-- A counter row per GA ticket type; holds decrement it conditionally.
CREATE TABLE IF NOT EXISTS bl_pg_ga (
    event_id   text NOT NULL,
    code       text NOT NULL,
    capacity   integer NOT NULL,
    available  integer NOT NULL CHECK (available >= 0),
    held       integer NOT NULL CHECK (held >= 0),
    sold       integer NOT NULL CHECK (sold >= 0),
    PRIMARY KEY (event_id, code),
    CHECK (available + held + sold = capacity)
);

CREATE TABLE IF NOT EXISTS bl_pg_holds (
    hold_id       text PRIMARY KEY,
    event_id      text NOT NULL,
    buyer_id      text NOT NULL,
    ticket_type   text NOT NULL,
    quantity      integer NOT NULL CHECK (quantity > 0),
    is_ga         boolean NOT NULL,
    seat_ids      text[] NOT NULL,
    seat_indexes  integer[] NOT NULL,
    -- GA units are numbered at confirm, from the type's sold counter
    units         integer[] NOT NULL DEFAULT '{}',
    expires_at    double precision NOT NULL,
    status        text NOT NULL CHECK (status IN ('held', 'sold', 'released', 'expired')),
    order_ref     text
);
-- the buyer limit sums a buyer's live holds and sales
CREATE INDEX IF NOT EXISTS bl_pg_holds_buyer_idx ON bl_pg_holds (event_id, buyer_id);
-- the sweeper and the lazy reclaim find due GA holds (seat holds expire lazily, by their seat rows)
CREATE INDEX IF NOT EXISTS bl_pg_holds_ga_due_idx ON bl_pg_holds (expires_at) WHERE status = 'held' AND is_ga;

-- The gateway's pool acts as the platform's role (persistence/db.py); these tables are the baseline's, without
-- row-level security (they hold no platform row: the sales go into the platform's own, org-scoped tables).
GRANT SELECT, INSERT, UPDATE, DELETE ON bl_pg_events, bl_pg_seats, bl_pg_ga, bl_pg_holds TO voelgoed_app;
