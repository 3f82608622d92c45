"""Schema migrations, on both stores: an empty store is brought to this release's version,
opening a current store applies nothing, a store from a newer release is refused untouched,
and stores opened at once on an empty state apply each migration once."""

import asyncio

import pytest

from monitor.store import StateChange, StoreError
from tests.store_contract.conftest import Backend
from tests.store_contract.rows import incident


async def test_an_empty_store_is_migrated_to_the_latest_version(backend: Backend) -> None:
    store = await backend.open()
    assert [m.version for m in store.migrated] == [m.version for m in backend.migrations]
    assert await store.schema_version() == backend.latest


async def test_a_current_store_is_opened_without_migrating_and_keeps_its_rows(backend: Backend) -> None:
    first = await backend.open()
    await first.record(StateChange(opened=[incident(1)]))
    again = await backend.open()
    assert again.migrated == []
    assert [i.id for i in await again.open_incidents()] == [1]


async def test_a_store_of_a_newer_release_is_refused_and_left_as_it_was(backend: Backend) -> None:
    store = await backend.open()
    await store.record(StateChange(opened=[incident(1)]))
    await store.close()
    backend.opened.remove(store)
    await backend.set_schema_version(99)
    with pytest.raises(StoreError, match=f"schema version 99 was written by a newer health-monitor .*{backend.latest}"):
        await backend.open()
    await backend.set_schema_version(backend.latest)
    assert [i.id for i in await (await backend.open()).open_incidents()] == [1]


async def test_stores_opened_at_once_on_an_empty_state_apply_each_migration_once(backend: Backend) -> None:
    stores = await asyncio.gather(*(backend.open() for _ in range(8)))
    assert sorted(len(store.migrated) for store in stores) == [0] * 7 + [len(backend.migrations)]
    assert {await store.schema_version() for store in stores} == {backend.latest}
