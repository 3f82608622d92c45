"""The outbox, acknowledgements, silences and pruning, on both stores."""

from datetime import timedelta

from monitor.store import PRUNE_BATCH, StateChange, StateStore, prune_expired
from tests.fakes import START
from tests.store_contract.rows import entry, incident, resolved


async def test_the_outbox_records_each_delivery_once_and_follows_its_attempts(store: StateStore) -> None:
    first, second = entry("n-1", "slack", 1), entry("n-1", "webhook", 1)
    assert await store.enqueue([first, second]) == [True, True]
    assert await store.enqueue([entry("n-2", "slack", 1, START + timedelta(seconds=1)), first]) == [True, False]
    assert await store.enqueue([entry("n-3", "slack", 1), entry("n-3", "slack", 1)]) == [True, False]

    await store.record_attempt("n-1", "slack", "HTTP 500")
    await store.record_attempt("n-1", "slack", "HTTP 429")
    pending = await store.pending_deliveries()
    assert [(d.notification_id, d.sink) for d in pending] == [
        ("n-1", "slack"), ("n-1", "webhook"), ("n-2", "slack"), ("n-3", "slack")
    ]  # oldest first
    assert (pending[0].attempts, pending[0].last_error) == (2, "HTTP 429")

    done_at = START + timedelta(minutes=1)
    await store.finish("n-1", "slack", "sent", done_at)
    await store.finish("n-1", "webhook", "dead", done_at, "HTTP 400: bad payload")
    await store.finish("n-2", "slack", "shed", done_at, "storm: grouped")
    assert [(d.notification_id, d.sink) for d in await store.pending_deliveries()] == [("n-3", "slack")]
    by_sink = {(d.notification_id, d.sink): d for d in await store.deliveries_for(1)}
    sent = by_sink["n-1", "slack"]
    assert (sent.state, sent.attempts, sent.finished_at, sent.last_error) == ("sent", 3, done_at, "HTTP 429")
    dead = by_sink["n-1", "webhook"]
    assert (dead.state, dead.attempts, dead.last_error) == ("dead", 1, "HTTP 400: bad payload")
    assert by_sink["n-2", "slack"].state == "shed"
    assert await store.deliveries_for(2) == []


async def test_acknowledgements_wait_until_a_change_applies_them(store: StateStore) -> None:
    await store.request_acknowledgement(1, START, "alice", "looking")
    await store.request_acknowledgement(2, START + timedelta(seconds=5), "bob", "")
    alice, bob = await store.unapplied_acknowledgements()
    assert (alice.incident_id, alice.at, alice.by, alice.note) == (1, START, "alice", "looking")
    assert (bob.incident_id, bob.by) == (2, "bob") and bob.seq > alice.seq
    await store.record(StateChange(acknowledgements_applied=[alice.seq]))
    assert await store.unapplied_acknowledgements() == [bob]


async def test_silences_last_until_they_end_or_are_removed(store: StateStore) -> None:
    hour = timedelta(hours=1)
    db = await store.add_silence("db", START, START + hour, "migration window")
    api = await store.add_silence("api", START, START + 2 * hour, "deploy")
    assert await store.silences(START) == [db, api]
    assert db.active_at(START) and not db.active_at(START + hour)
    assert await store.silences(START + hour) == [api]
    assert await store.remove_silence(api.id) is True
    assert await store.remove_silence(api.id) is False
    assert await store.silences(START) == [db]


async def test_pruning_removes_only_finished_deliveries_and_resolved_incidents_past_the_cutoff(
    store: StateStore,
) -> None:
    old, recent, still_open = incident(1, check="old"), incident(2, check="recent"), incident(3, check="open")
    await store.record(StateChange(
        opened=[old, recent, still_open],
        outbox=[entry("n-old", "slack", 1), entry("n-recent", "slack", 2), entry("n-pending", "slack", 3)],
    ))  # fmt: skip
    await store.record(StateChange(saved=[resolved(old), resolved(recent, after=timedelta(days=3))]))
    await store.finish("n-old", "slack", "sent", START)
    await store.finish("n-recent", "slack", "sent", START + timedelta(days=3))
    cutoff = START + timedelta(days=1)
    assert await prune_expired(store, cutoff) == 1  # one incident and one delivery: one per table and batch
    assert [i.id for i in await store.recent_incidents()] == [3, 2]
    assert [d.notification_id for d in await store.deliveries_for(1)] == []
    assert [d.notification_id for d in await store.deliveries_for(2)] == ["n-recent"]
    assert [d.notification_id for d in await store.pending_deliveries()] == ["n-pending"]
    assert await prune_expired(store, cutoff) == 0


async def test_pruning_goes_a_batch_at_a_time(store: StateStore) -> None:
    count = PRUNE_BATCH + 20
    opened = [incident(n, check=f"c{n}") for n in range(1, count + 1)]
    await store.record(StateChange(opened=opened))
    await store.record(StateChange(saved=[resolved(i) for i in opened]))
    cutoff = START + timedelta(days=1)
    assert await store.prune(cutoff, 100) == 100
    assert await prune_expired(store, cutoff) == count - 100
    assert await store.recent_incidents() == []
