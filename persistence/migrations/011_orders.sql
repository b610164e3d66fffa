-- Checkout: orders, their payment attempts, the provider's events as received, the order's issued ticket codes,
-- and the outbox (what a change owes the world outside Postgres, written in the change's own transaction).
--
-- engine/orders.py decides an order's moves; these tables defend what must never break even with a buggy writer:
-- one order per hold, ids that derive from the hold (engine/ids.py), a status from the engine's list with its
-- reason exactly when it ended, one application per provider event, one code per ticket.

CREATE TABLE orders (
    org_id        text NOT NULL,
    id            text PRIMARY KEY,
    event_id      text NOT NULL,
    -- one hold makes at most one order (a second checkout of it answers the first order)
    hold_id       text NOT NULL UNIQUE,
    buyer_id      text NOT NULL CHECK (char_length(buyer_id) BETWEEN 1 AND 128),
    buyer_email   text NOT NULL CHECK (char_length(buyer_email) BETWEEN 3 AND 254),
    buyer_name    text NOT NULL CHECK (char_length(buyer_name) BETWEEN 1 AND 200),
    status        text NOT NULL DEFAULT 'pending_payment' CHECK (status IN (
                      'pending_payment', 'paid', 'partially_refunded', 'refunded', 'expired', 'failed',
                      'cancelled')),
    reason        text CHECK (char_length(reason) BETWEEN 1 AND 64),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_minor   bigint NOT NULL CHECK (total_minor >= 0),
    -- the catalog's quote the order was priced with (engine/catalog/pricing.py Quote, as JSON): the ledger's
    -- capture and every refund are computed from it
    quote         jsonb NOT NULL,
    promo_code    text CHECK (char_length(promo_code) BETWEEN 1 AND 64),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- the end of the payment window: unpaid by then, the order expires and its hold is released
    expires_at    timestamptz NOT NULL CHECK (expires_at > created_at),
    paid_at       timestamptz,
    tickets_issued_at timestamptz CHECK (tickets_issued_at >= paid_at),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (hold_id ~ '^hld_[0-9a-f]{52}$'),
    CHECK (substr(hold_id, 5, 32) = substr(event_id, 5)),
    CHECK (id = 'ord_' || substr(hold_id, 5)),
    CHECK (status <> 'pending_payment' OR (reason IS NULL AND paid_at IS NULL)),
    CHECK (status NOT IN ('paid', 'partially_refunded') OR paid_at IS NOT NULL),
    CHECK (tickets_issued_at IS NULL OR paid_at IS NOT NULL),
    FOREIGN KEY (org_id, event_id) REFERENCES events (org_id, id)
);
CREATE INDEX orders_org_event_idx ON orders (org_id, event_id, id);
CREATE INDEX orders_org_status_idx ON orders (org_id, status, id);
-- the expiry sweep: pending orders by the end of their window
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending_payment';

-- One attempt to take an order's total through a provider. Its id is the provider's idempotency key, so a
-- retried create answers the same intent.
CREATE TABLE payment_attempts (
    org_id        text NOT NULL,
    id            text PRIMARY KEY,
    order_id      text NOT NULL REFERENCES orders (id),
    provider      text NOT NULL CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$'),
    intent_id     text CHECK (char_length(intent_id) BETWEEN 1 AND 200),
    confirm_url   text CHECK (char_length(confirm_url) BETWEEN 1 AND 2000),
    status        text NOT NULL CHECK (status IN (
                      'creating', 'requires_payment', 'processing', 'authorized', 'captured', 'refunded',
                      'failed', 'canceled')),
    failure_code  text CHECK (char_length(failure_code) BETWEEN 1 AND 64),
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    captured_minor bigint NOT NULL DEFAULT 0 CHECK (captured_minor BETWEEN 0 AND amount_minor),
    refunded_minor bigint NOT NULL DEFAULT 0 CHECK (refunded_minor BETWEEN 0 AND captured_minor),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'creating') = (intent_id IS NULL)),
    CHECK (id = 'pay_' || substr(order_id, 5) || '_1')
);
CREATE UNIQUE INDEX payment_attempts_intent_idx ON payment_attempts (provider, intent_id);
CREATE INDEX payment_attempts_order_idx ON payment_attempts (order_id);

-- Each provider event applied once: a redelivered or replayed event id finds its row and changes nothing.
CREATE TABLE provider_events (
    org_id        text NOT NULL,
    provider      text NOT NULL,
    event_id      text NOT NULL CHECK (char_length(event_id) BETWEEN 1 AND 200),
    type          text NOT NULL CHECK (char_length(type) BETWEEN 1 AND 64),
    intent_id     text NOT NULL,
    -- what the event did to its order (an engine.orders.Change), for the operator reading a dispute
    outcome       text NOT NULL CHECK (char_length(outcome) BETWEEN 1 AND 64),
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- Money an order gave back (an automatic refund, a refund on request): what, why, and the provider's answer.
CREATE TABLE order_refunds (
    org_id        text NOT NULL,
    id            text PRIMARY KEY,
    order_id      text NOT NULL REFERENCES orders (id),
    amount_minor  bigint NOT NULL CHECK (amount_minor >= 0),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reason        text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 64),
    ticket_ids    text[] NOT NULL DEFAULT '{}',
    -- owed: the outbox will ask the provider; done: the provider returned it (or nothing was captured: voided)
    status        text NOT NULL DEFAULT 'owed' CHECK (status IN ('owed', 'done')),
    provider_refund_id text CHECK (char_length(provider_refund_id) BETWEEN 1 AND 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,
    CHECK ((status = 'done') = (done_at IS NOT NULL))
);
CREATE INDEX order_refunds_order_idx ON order_refunds (order_id, created_at);

-- A ticket's signed QR payload (engine/tickets/payload.py), issued once when its order is fulfilled. The payload
-- stays what it was signed as: a rotated key still verifies it until retired.
CREATE TABLE ticket_codes (
    org_id        text NOT NULL,
    ticket_id     text PRIMARY KEY REFERENCES tickets (id),
    order_id      text NOT NULL REFERENCES orders (id),
    kid           text NOT NULL CHECK (kid ~ '^[0-9a-f]{6}$'),
    payload       text NOT NULL CHECK (char_length(payload) BETWEEN 1 AND 400),
    issued_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, kid) REFERENCES ticket_keys (org_id, kid)
);
CREATE INDEX ticket_codes_order_idx ON ticket_codes (order_id, ticket_id);

-- The outbox: what a committed change still owes outside Postgres (confirm a paid order's hold, release a hold,
-- refund a payment, deliver a webhook ...). Written in the change's own transaction (services/unit_of_work.py),
-- so the debt exists if and only if the change does; drained by supporting actors, each row handled
-- idempotently (its topic and key name the work, so a retry after a crash does the same work once).
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    org_id        text NOT NULL,
    topic         text NOT NULL CHECK (topic ~ '^[a-z][a-z0-9_.]{0,63}$'),
    key           text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 200),
    payload       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- the drain's bookkeeping: attempts so far, when the next may start, the last failure, when it was done
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error    text CHECK (char_length(last_error) <= 500),
    done_at       timestamptz,
    -- given up after the drain's bounds: an operator looks (voelgoed_outbox_stuck counts them)
    stuck         boolean NOT NULL DEFAULT false,
    UNIQUE (org_id, topic, key),
    CHECK (NOT (stuck AND done_at IS NOT NULL))
);
CREATE INDEX outbox_due_idx ON outbox (topic, next_attempt_at, id) WHERE done_at IS NULL AND NOT stuck;

GRANT SELECT, INSERT, UPDATE ON orders, payment_attempts, order_refunds, outbox TO voelgoed_app, voelgoed_platform;
GRANT SELECT, INSERT ON provider_events, ticket_codes TO voelgoed_app, voelgoed_platform;
GRANT USAGE ON SEQUENCE outbox_id_seq TO voelgoed_app, voelgoed_platform;

SELECT isolate_by_org('orders', 'payment_attempts', 'provider_events', 'order_refunds', 'ticket_codes', 'outbox');
