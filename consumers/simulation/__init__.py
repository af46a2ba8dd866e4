"""A simulated operator day for `ledger simulate` and `ledger demo`, and a simulated PSP.

- `network`: the operators (tariffs, locations, charge points, drivers) and their config;
- `planner`: who charges where and when, wallet top-ups, terminal authorizations;
- `charge_point`: one session as its station reports it over OCPP 2.0.1;
- `psp`: how the PSP's test mode answers payment commands (pure);
- `vouchers`: a campaign of session credit, a partner's balance codes, who redeems what
  (three redemptions the ledger refuses);
- `scenario`: the day played out against the real ledger in memory, as event lines.
"""
