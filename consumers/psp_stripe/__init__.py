"""The Stripe adapter (`ledger psp-stripe`): the ledger's payment commands as Stripe calls,
Stripe's answers and webhooks as `PaymentResult`s. See docs/psp.md.

- `accounts`: per-tenant Stripe keys from configuration (never logged, never in events);
- `calls`: which Stripe request each command becomes (pure);
- `outcomes`: what a Stripe answer or error means for the ledger (pure);
- `adapter`: makes the calls, with bounded retries of transient errors;
- `webhooks`: Stripe's asynchronous answers, signature-checked and deduplicated.
"""
