-- The ledger (engine/ledger): double-entry, append-only, per org and currency.
--
-- A ledger transaction is one movement of money (a payment captured, revenue released, a refund, a chargeback, a
-- payout, a correction); its entries (debit > 0, credit < 0) sum to zero in each currency. engine/ledger builds
-- only such transactions; this schema refuses any other, whoever writes:
--   * every entry is non-zero, in a known account, in a three-letter currency, within the core's bound;
--   * at commit, each transaction has exactly the entries it declares and they balance per currency (deferred
--     constraint triggers: the entries are inserted after their transaction, in the same database transaction;
--     an entry added to a transaction later is refused the same way, as its count no longer matches);
--   * a source (what caused the money to move: "payment:<id>", "refund:<id>") is written once per org, so a
--     replayed webhook cannot post the same money twice;
--   * nothing is ever updated or deleted, by anyone, the owner included (a correction is a new transaction that
--     names the one it corrects).
-- The bounds repeat engine/ledger/book.py; the accounts and kinds engine/ledger/accounts.py.

CREATE TABLE ledger_transactions (
    org_id    text NOT NULL REFERENCES orgs (id),
    id        text NOT NULL PRIMARY KEY CHECK (id ~ '^ltx_[0-9a-f]{32}$'),
    -- the order transactions were written in, for listing with a cursor (one sequence for every org)
    seq       bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind      text NOT NULL CHECK (kind IN ('capture', 'release', 'refund', 'chargeback', 'payout', 'correction')),
    source    text NOT NULL CHECK (char_length(source) BETWEEN 1 AND 200),
    order_id  text CHECK (char_length(order_id) BETWEEN 1 AND 128),
    corrects  text,
    memo      text NOT NULL DEFAULT '' CHECK (char_length(memo) <= 200),
    entries   smallint NOT NULL CHECK (entries BETWEEN 2 AND 32),
    at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    UNIQUE (org_id, source),
    CHECK ((kind = 'correction') = (corrects IS NOT NULL)),
    CHECK (corrects <> id),
    FOREIGN KEY (org_id, corrects) REFERENCES ledger_transactions (org_id, id)
);
CREATE INDEX ledger_transactions_org_seq_idx ON ledger_transactions (org_id, seq);
CREATE INDEX ledger_transactions_order_idx ON ledger_transactions (org_id, order_id) WHERE order_id IS NOT NULL;

CREATE TABLE ledger_entries (
    org_id          text NOT NULL,
    transaction_id  text NOT NULL,
    position        smallint NOT NULL CHECK (position BETWEEN 0 AND 31),
    account         text NOT NULL CHECK (account IN ('provider_clearing', 'refunds', 'payouts', 'organizer_revenue',
                                                     'organizer_payable', 'platform_fees', 'tax_payable')),
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor    bigint NOT NULL CHECK (amount_minor <> 0
                                           AND amount_minor BETWEEN -1000000000000000 AND 1000000000000000),
    PRIMARY KEY (transaction_id, position),
    FOREIGN KEY (org_id, transaction_id) REFERENCES ledger_transactions (org_id, id)
);
-- balances: one account's entries in one currency
CREATE INDEX ledger_entries_account_idx ON ledger_entries (org_id, currency, account);

-- Checked at commit, once per transaction and once per entry written (an entry added later to a transaction
-- already committed is caught by its count).
CREATE FUNCTION ledger_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txn_id      text;
    declared    smallint;
    found       bigint;
    unbalanced  text;
BEGIN
    -- a trigger function is compiled per table, so each branch only ever reads its own table's columns
    IF TG_TABLE_NAME = 'ledger_transactions' THEN
        txn_id := NEW.id;
    ELSE
        txn_id := NEW.transaction_id;
    END IF;
    SELECT t.entries INTO declared FROM ledger_transactions t WHERE t.id = txn_id;
    SELECT count(*) INTO found FROM ledger_entries e WHERE e.transaction_id = txn_id;
    IF declared IS DISTINCT FROM found THEN
        RAISE EXCEPTION 'ledger transaction % has % entries, not the % it declares', txn_id, found, declared
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
    END IF;
    SELECT string_agg(s.currency || ' ' || s.total, ', ') INTO unbalanced
        FROM (SELECT e.currency, sum(e.amount_minor) AS total FROM ledger_entries e
              WHERE e.transaction_id = txn_id GROUP BY e.currency HAVING sum(e.amount_minor) <> 0) s;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: %', txn_id, unbalanced
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER ledger_transaction_balanced AFTER INSERT ON ledger_transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balanced();
CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_transaction_balanced();

-- Append-only, like the audit log (002_tenancy.sql): for everyone, the owner included.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (% on % refused): post a correction', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

GRANT SELECT, INSERT ON ledger_transactions, ledger_entries TO voelgoed_app, voelgoed_platform;

SELECT isolate_by_org('ledger_transactions', 'ledger_entries');  -- 003_venues_layouts.sql
