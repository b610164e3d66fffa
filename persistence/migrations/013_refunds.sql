-- Refunds on request (POST /v1/orders/{id}/refunds), chargebacks and a cancelled event's refunds: the organizer's
-- reason is kept as given (the provider takes up to 500 characters), and each ticket is refunded at most once,
-- whatever a buggy writer tries: order_refund_tickets holds one row per refunded ticket, keyed by the ticket.
ALTER TABLE order_refunds DROP CONSTRAINT order_refunds_reason_check;
ALTER TABLE order_refunds ADD CONSTRAINT order_refunds_reason_check CHECK (char_length(reason) BETWEEN 1 AND 500);

CREATE TABLE order_refund_tickets (
    org_id        text NOT NULL,
    ticket_id     text PRIMARY KEY REFERENCES tickets (id),
    refund_id     text NOT NULL REFERENCES order_refunds (id),
    order_id      text NOT NULL REFERENCES orders (id)
);
CREATE INDEX order_refund_tickets_refund_idx ON order_refund_tickets (refund_id);

GRANT SELECT, INSERT ON order_refund_tickets TO voelgoed_app, voelgoed_platform;
SELECT isolate_by_org('order_refund_tickets');
