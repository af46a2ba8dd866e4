"""What the relay reads of the log, without a broker: every command the outbox records, in
log order, whether an `OutboundCommand` or a cost update carried by a meter reading, and
readings that carry nothing passed over (the broker side: tests/integration/test_relay.py,
tests/e2e/test_cost_updates.py)."""

from __future__ import annotations

import argparse
from decimal import Decimal

from consumers.avro_codec import decode, type_from_headers
from consumers.observability import Metrics
from consumers.relay import RELAYED_TOPICS, Relay
from consumers.settings import settings_from
from tests.builders import LedgerDriver, driver, location, session_events, tariff, tenant


def test_a_page_holds_every_recorded_command_in_log_order_and_passes_over_bare_readings(
) -> None:
    d = LedgerDriver()
    d.apply(tenant(cost_update_step=Decimal("1.00"), cost_update_interval_s=3600), tariff(),
            location(), driver("post", "post_paid"))
    d.apply_each(session_events("tx1", "post", "10", updates=9))
    args = argparse.Namespace(bootstrap_servers="127.0.0.1:1", topic_prefix="p.",
                              store="memory:", metrics_port=0)
    settings = settings_from(args, environ={})
    metrics = Metrics()
    relay = Relay(d.ledger, d.ledger.recorder, None, settings, metrics)

    page = relay.read_page(0)
    assert page is not None
    expected = list(d.ledger.recorded_commands())
    assert [r.notification_id for r in page.records] == [n for n, _ in expected]
    assert [r.message_id for r in page.records] == [c.command_id for _, c in expected]
    newest = d.ledger.recorder.select_notifications(
        0, limit=10_000, topics=RELAYED_TOPICS, inclusive_of_start=False)[-1].id
    assert page.last_notification_id == newest, "readings after the last command read too"
    updates = [decode(type_from_headers(r.headers), r.value) for r in page.records
               if r.topic == settings.topic("csms.commands")]
    assert [u.sequence for u in updates] == [0, 1, 2, 3] and updates[-1].final
    assert all(r.key == b"t1:tx1" for r in page.records if r.topic.endswith("csms.commands"))
    assert relay.read_page(page.last_notification_id) is None
