"""`record`, on both stores: what a change writes is read back as written, a change that fails
part-way leaves nothing, one key has at most one open incident however many writers race to
open it, and incident ids never go back."""

import asyncio
from datetime import timedelta

import pytest

from monitor.store import CheckMemory, RecordOutcome, StateChange, StateStore, StoreUnavailable, prune_expired
from tests.fakes import START
from tests.store_contract.conftest import Backend
from tests.store_contract.rows import entry, incident, pages, resolved


async def test_a_change_is_read_back_as_it_was_written(store: StateStore) -> None:
    await store.request_acknowledgement(7, START, "alice", "looking")
    [requested] = await store.unapplied_acknowledgements()
    api, db = incident(1), incident(2, check="db")
    outcome = await store.record(StateChange(
        opened=[api, db],
        outbox=[*pages(1), *pages(2)],
        acknowledgements_applied=[requested.seq],
        memories=[CheckMemory("api", '{"streak": 3}'), CheckMemory("db", '{"streak": 1}')],
    ))  # fmt: skip
    assert outcome == RecordOutcome()
    assert await store.get_incident(1) == api
    assert await store.open_incidents() == [api, db]
    assert await store.recent_incidents() == [db, api]
    assert await store.unapplied_acknowledgements() == []
    assert await store.check_memories() == [CheckMemory("api", '{"streak": 3}'), CheckMemory("db", '{"streak": 1}')]
    pending = await store.pending_deliveries()
    assert [(d.notification_id, d.sink, d.incident_id, d.kind, d.state, d.attempts) for d in pending] == [
        (e.notification_id, e.sink, e.incident_id, "opened", "pending", 0) for e in [*pages(1), *pages(2)]
    ]
    assert pending[0].created_at == START and pending[0].document == pages(1)[0].document
    assert await store.last_incident_id() == 2

    done = resolved(api)
    await store.record(StateChange(
        saved=[done], outbox=[entry("n-1-resolved", "console", 1, kind="resolved")],
        memories=[CheckMemory("api", '{"streak": 0}')], forgotten=["db"],
    ))  # fmt: skip
    assert await store.get_incident(1) == done
    assert await store.open_incidents() == [db]
    assert await store.check_memories() == [CheckMemory("api", '{"streak": 0}')]
    assert [d.kind for d in await store.deliveries_for(1)] == ["opened"] * 3 + ["resolved"]


async def test_a_change_that_fails_part_way_writes_nothing_of_it(backend: Backend, store: StateStore) -> None:
    await store.request_acknowledgement(1, START, "alice", "looking")
    [requested] = await store.unapplied_acknowledgements()
    await backend.sabotage()  # writing the memory, the change's last step, fails
    with pytest.raises(StoreUnavailable, match="sabotaged by the test"):
        await store.record(StateChange(
            opened=[incident(1)], outbox=pages(1), acknowledgements_applied=[requested.seq],
            memories=[CheckMemory("api", "{}")],
        ))  # fmt: skip
    assert await store.recent_incidents() == []
    assert await store.pending_deliveries() == []
    assert await store.unapplied_acknowledgements() == [requested]
    assert await store.last_incident_id() == 0
    # The store goes on working: the same change without the failing part is written.
    await store.record(StateChange(opened=[incident(1)], outbox=pages(1)))
    assert [i.id for i in await store.open_incidents()] == [1]


async def test_opening_a_key_that_has_an_open_incident_adopts_it_and_writes_the_rest(store: StateStore) -> None:
    first = incident(1)
    await store.record(StateChange(opened=[first], outbox=pages(1)))
    late = incident(2)  # another writer decided the same opening
    outcome = await store.record(StateChange(
        opened=[late, incident(3, check="db")], outbox=[*pages(2), *pages(3)], memories=[CheckMemory("api", "{}")],
    ))  # fmt: skip
    assert outcome.adopted == {2: first}
    assert [i.id for i in await store.open_incidents()] == [1, 3]
    assert await store.deliveries_for(2) == []  # the adopted incident's pages are not sent twice
    assert len(await store.deliveries_for(3)) == 3
    assert await store.check_memories() == [CheckMemory("api", "{}")]
    # Once resolved, the key opens again.
    await store.record(StateChange(saved=[resolved(first)]))
    assert (await store.record(StateChange(opened=[incident(4)]))).adopted == {}
    assert [i.id for i in await store.open_incidents()] == [3, 4]


async def test_100_concurrent_records_opening_one_key_leave_one_open_incident(backend: Backend) -> None:
    writers = [await backend.open() for _ in range(3)]  # three processes (or replicas), each with its own connections

    async def open_it(n: int) -> RecordOutcome:
        return await writers[n % len(writers)].record(StateChange(opened=[incident(n)], outbox=pages(n)))

    outcomes = await asyncio.gather(*(open_it(n) for n in range(1, 101)))
    [winner] = await writers[0].open_incidents()
    assert len(await writers[0].recent_incidents()) == 1
    assert sorted(n for n, outcome in enumerate(outcomes, 1) if not outcome.adopted) == [winner.id]
    assert all(outcome.adopted == {n: winner} for n, outcome in enumerate(outcomes, 1) if n != winner.id)
    deliveries = await writers[0].pending_deliveries()
    assert {d.incident_id for d in deliveries} == {winner.id} and len(deliveries) == 3


async def test_the_last_incident_id_never_goes_back_after_pruning(store: StateStore) -> None:
    opened = [incident(n, check=f"c{n}") for n in range(1, 6)]
    await store.record(StateChange(opened=opened))
    await store.record(StateChange(saved=[resolved(i) for i in opened[3:]]))  # the newest two resolve
    assert await store.last_incident_id() == 5
    assert await prune_expired(store, START + timedelta(days=1)) == 2
    assert [i.id for i in await store.recent_incidents()] == [3, 2, 1]
    assert await store.last_incident_id() == 5
    await store.record(StateChange(opened=[incident(6, check="c6")]))
    assert await store.last_incident_id() == 6
