"""The double-entry ledger: accounts per org and currency, the rules every transaction keeps, and the flows of
money (a payment captured, revenue released, a refund, a chargeback, a payout) as pure functions building
transactions from their inputs.

- ``accounts``: the seven accounts, each with its normal side and the sides its balance may take.
- ``book``: entries and transactions (balanced per currency, never edited: a correction is a new transaction),
  balances, and ``post`` (a transaction applied to balances, refused if any account would take a side it may not).
- ``flows``: what each money movement posts, from the quote an order was paid with and what it has refunded.

Money is integer minor units; entries are signed: a debit is positive, a credit negative, so a balanced
transaction's entries sum to zero in each currency. docs/architecture.md "Checkout: the ledger" has a worked
example.
"""
