"""What lets one process hold 10,000 checks: start-up linear in the checks, a /metrics that
renders off the event loop (gzip, OpenMetrics, the process_/python_ collectors), per-check
series that cost little, and an OK run that does no I/O."""

import asyncio
import gc
import gzip
import random
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from monitor import check_series, event_loop, gc_policy, registry
from monitor.check_series import CHUNK_ROWS, CheckSeries
from monitor.clock import SystemClock
from monitor.config import ConfigError, load_config
from monitor.daemon import Daemon
from monitor.gzip_segments import Segment, compress, gzip_body
from monitor.metrics import MonitorMetrics
from monitor.model import Finding, Status
from monitor.pipeline import Pipeline
from monitor.runner import RunResult
from monitor.sqlite_store import SqliteStore
from monitor.store_guard import GuardedStore
from tests.fakes import FakeClock
from tests.incident_harness import DOWN, UP, http_check, write_config
from tests.net import free_port, running_daemon, wait_until

CHECKS = 10_000


def many_checks(tmp_path: Path, count: int, server: str = "") -> Path:
    tables = "".join(
        f'[checks.c{i}]\ntype = "http"\nurl = "http://127.0.0.1:1/health"\ninterval = "10s"\n' for i in range(count)
    )
    path = tmp_path / "monitor.toml"
    path.write_text(f'[monitor]\nstate_path = "{tmp_path}/state.db"\n[server]\n{server}\n{tables}')
    return path


def test_a_config_of_10000_checks_loads_scanning_the_entry_points_once(tmp_path, monkeypatch, clean_env) -> None:
    scans: list[str] = []
    real_entry_points = registry.entry_points

    def counting(group: str):  # type: ignore[no-untyped-def]
        scans.append(group)
        return real_entry_points(group=group)

    monkeypatch.setattr(registry, "entry_points", counting)
    registry.available.cache_clear()
    try:
        config = load_config(many_checks(tmp_path, CHECKS))
    finally:
        registry.available.cache_clear()
    assert len(config.checks) == CHECKS
    assert config.checks["c9999"].interval == 10.0
    assert scans == [registry.CHECK_GROUP]


def test_duration_buckets_must_increase(tmp_path, clean_env) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(many_checks(tmp_path, 1, server="duration_buckets = [1.0, 0.5]"))
    assert error.value.problems == [
        "server.duration_buckets: expected positive bounds in increasing order, e.g. [0.05, 0.25, 1, 5]"
    ]


# The per-check series


def record_some(metrics: MonitorMetrics) -> None:
    metrics.record_run("api", Status.OK, 0.02, 1_700_000_000.5)
    metrics.record_run("api", Status.OK, 0.3, 1_700_000_001.5)
    metrics.record_run("api", Status.CRITICAL, 7.0, 1_700_000_002.5)
    metrics.record_run('odd"name', Status.WARNING, 0.1, 1_700_000_003.5)
    metrics.checks.set_flapping("api", True)


def samples(text: str, openmetrics: bool = False) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parse(text)
        if family.name.startswith("health_monitor_check")
        for sample in family.samples
    }


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_hand_rendered_check_series_parse_to_what_prometheus_client_would_export(openmetrics) -> None:
    metrics = MonitorMetrics()
    record_some(metrics)
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else ""
    text = asyncio.run(metrics.scrape(accept, "").render()).decode()
    from_collectors = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.checks.collect()
        for sample in family.samples
    }
    assert samples(text, openmetrics) == from_collectors
    api = (("check", "api"),)
    assert from_collectors[("health_monitor_check_up", api)] == 0
    assert from_collectors[("health_monitor_check_status", api)] == 2
    assert from_collectors[("health_monitor_check_flapping", api)] == 1
    assert from_collectors[("health_monitor_check_duration_seconds_bucket", (*api, ("le", "0.05")))] == 1
    assert from_collectors[("health_monitor_check_duration_seconds_bucket", (*api, ("le", "5.0")))] == 2
    assert from_collectors[("health_monitor_check_duration_seconds_count", api)] == 3
    assert from_collectors[("health_monitor_check_runs_total", (*api, ("status", "ok")))] == 2
    assert from_collectors[("health_monitor_check_last_run_timestamp_seconds", api)] == 1_700_000_002.5
    assert from_collectors[("health_monitor_check_up", (("check", 'odd"name'),))] == 0


def test_a_check_costs_twelve_series_by_default_and_six_with_a_duration_gauge() -> None:
    for duration_metric, per_check in (("histogram", 12), ("gauge", 6)):
        metrics = MonitorMetrics(duration_metric)  # type: ignore[arg-type]
        metrics.record_run("api", Status.OK, 0.02, 1_700_000_000.5)
        series = samples(asyncio.run(metrics.scrape("", "").render()).decode())
        assert len(series) == per_check == check_series.series_per_check(duration_metric, metrics.checks.bounds)
        kinds = {family.name: family.type for family in metrics.checks.collect()}
        assert kinds["health_monitor_check_duration_seconds"] == duration_metric


def single_gzip_member(body: bytes) -> bytes:
    """What a reader that stops at the end of the first gzip member (zlib, curl) gets."""
    reader = zlib.decompressobj(31)
    text = reader.decompress(body)
    assert reader.eof and not reader.unused_data, "one gzip member, ended, nothing after it"
    return text


def test_segments_compressed_one_by_one_make_one_gzip_member_of_their_text() -> None:
    pieces = [random.randbytes(random.randrange(0, 5000)) * random.randrange(1, 50) for _ in range(40)]
    body = gzip_body([compress(piece) for piece in pieces])
    assert single_gzip_member(body) == gzip.decompress(body) == b"".join(pieces)


def formatted_pieces(metrics: MonitorMetrics) -> int:
    return sum(formatted for _, formatted in metrics.checks.segments(openmetrics=False))


def test_a_scrape_formats_again_only_the_pieces_whose_rows_changed() -> None:
    metrics = MonitorMetrics()
    for i in range(3 * CHUNK_ROWS):
        metrics.record_run(f"c{i}", Status.OK, 0.02, 1_700_000_000.5)
    families = len(list(metrics.checks.collect())) - 1  # uptime comes pre-formatted from the history
    assert formatted_pieces(metrics) == 3 * families
    assert formatted_pieces(metrics) == 0, "nothing changed"
    metrics.record_run("c1", Status.OK, 0.03, 1_700_000_010.5)
    assert formatted_pieces(metrics) == 3, "one piece of the duration, runs and last-run families"
    metrics.record_run(f"c{CHUNK_ROWS}", Status.CRITICAL, 0.03, 1_700_000_010.5)
    metrics.checks.set_flapping(f"c{2 * CHUNK_ROWS}", True)
    assert formatted_pieces(metrics) == families + 3, "a status changes up, status and the run families; flapping"


def test_kept_pieces_show_what_a_fresh_render_would_through_runs_flaps_and_reloads() -> None:
    rng = random.Random(12)
    metrics = MonitorMetrics()
    checks = [f"c{i}" for i in range(2 * CHUNK_ROWS + 7)]
    for step in range(30):
        for check in rng.sample(checks, 50):
            metrics.record_run(check, rng.choice(list(Status)), rng.random(), 1_700_000_000.0 + step)
        metrics.checks.set_flapping(rng.choice(checks), rng.random() < 0.5)
        if step % 7 == 3:
            metrics.forget_check(rng.choice(checks))
        kept = asyncio.run(metrics.scrape("", "gzip").render())
        metrics.checks._rendered.clear()
        fresh = asyncio.run(metrics.scrape("", "").render())
        assert samples(gzip.decompress(kept).decode()) == samples(fresh.decode())


def test_a_check_removed_by_a_reload_loses_its_series() -> None:
    metrics = MonitorMetrics()
    record_some(metrics)
    metrics.forget_check("api")
    assert metrics.registry.get_sample_value("health_monitor_check_up", {"check": "api"}) is None
    assert metrics.registry.get_sample_value("health_monitor_check_up", {"check": 'odd"name'}) == 0


# /metrics over HTTP


@pytest.fixture
async def daemon_base(tmp_path: Path, serve, clean_env) -> AsyncIterator[tuple[Daemon, str]]:
    app = web.Application()

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/ok", ok)
    target = f"http://127.0.0.1:{(await serve(app)).port}/ok"
    port = free_port()
    path = tmp_path / "monitor.toml"
    path.write_text(f"""
[monitor]
state_path = "{tmp_path}/state.db"
incident_log = "{tmp_path}/incidents.log"
[server]
listen = "127.0.0.1:{port}"
[checks.api]
type = "http"
url = "{target}"
interval = "50ms"
""")
    async with running_daemon(path) as daemon:
        await wait_until(lambda: runs(daemon), "a first run")
        yield daemon, f"http://127.0.0.1:{port}"


def runs(daemon: Daemon) -> float:
    return daemon.metrics.registry.get_sample_value("health_monitor_check_runs_total", {"check": "api", "status": "ok"})


async def test_a_scrape_during_a_slow_render_does_not_delay_the_checks(daemon_base, monkeypatch) -> None:
    daemon, base = daemon_base
    runs_at_each_piece: list[float] = []
    real_segments = CheckSeries.segments

    def slow_segments(self: CheckSeries, openmetrics: bool) -> Iterator[tuple[Segment, bool]]:
        """The real pieces, then 200 empty ones of 5 ms each: a second of rendering, twenty intervals."""
        yield from real_segments(self, openmetrics)
        for _ in range(200):
            runs_at_each_piece.append(runs(daemon))
            time.sleep(0.005)
            yield compress(b""), True

    monkeypatch.setattr(CheckSeries, "segments", slow_segments)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert "health_monitor_check_up" in await response.text()
    assert runs_at_each_piece[-1] >= runs_at_each_piece[0] + 3, "the checks waited for the render"


async def test_metrics_are_gzipped_when_the_scraper_accepts_it(daemon_base) -> None:
    _, base = daemon_base
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            body = await response.read()
            text = gzip.decompress(body).decode()
            assert single_gzip_member(body) == text.encode(), "readers that stop after one member see it all"
        async with session.get(f"{base}/metrics", headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
            plain = (await response.read()).decode()
    for exposition in (text, plain):
        assert {"health_monitor_check_up", "process_resident_memory_bytes"} <= {
            family.name for family in text_string_to_metric_families(exposition)
        }


async def test_openmetrics_when_the_scraper_asks_for_it_with_the_process_and_python_collectors(daemon_base) -> None:
    _, base = daemon_base
    prometheus_accept = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/metrics", headers={"Accept": prometheus_accept}) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
            openmetrics = await response.text()
        async with session.get(f"{base}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            classic = await response.text()
    assert openmetrics.endswith("# EOF\n") and openmetrics.count("# EOF") == 1
    families = {family.name: family.type for family in openmetrics_families(openmetrics)}
    assert families["health_monitor_check_runs"] == "counter"
    assert families["health_monitor_check_duration_seconds"] == "histogram"
    for exposition in (openmetrics, classic):
        assert "process_resident_memory_bytes " in exposition
        assert "process_cpu_seconds_total " in exposition
        assert "python_info{" in exposition
        assert "python_gc_objects_collected_total{" in exposition


# The per-result path


class CountingStore:
    """Counts the writes that reach the real store."""

    WRITES = ("record", "enqueue", "record_attempt", "finish")

    def __init__(self, store: object) -> None:
        self._store = store
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._store, name)
        if name in self.WRITES:
            def counted(*args: object, **kwargs: object) -> object:
                self.writes.append(name)
                return attribute(*args, **kwargs)
            return counted
        return attribute


async def test_an_ok_run_and_a_further_failing_run_that_changes_nothing_write_nothing(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, http_check("api"), sinks=("log",)))
    store = CountingStore(await SqliteStore.open(config.monitor.state_path))
    log = Path(config.monitor.incident_log)
    clock = FakeClock()
    guarded = GuardedStore(store, MonitorMetrics(), clock)  # type: ignore[arg-type]
    pipeline = await Pipeline.open(config, guarded, {}, MonitorMetrics(), clock, None)

    async def run(finding: Finding) -> None:
        await pipeline.on_result(RunResult("api", [finding], 0.0))

    for _ in range(5):
        await run(UP)
    assert store.writes == []
    assert not log.exists()
    await run(DOWN)
    await run(DOWN)
    assert pipeline.incidents.open_incidents
    opened = len(store.writes)
    for _ in range(10):
        await run(DOWN)
    await pipeline.tick()
    assert len(store.writes) == opened
    await run(replace(DOWN, summary="HTTP 502"))
    assert len(store.writes) == opened
    await pipeline.tick()
    assert store.writes[opened:] == ["record"]
    (incident,) = await guarded.open_incidents()
    assert (incident.summary, incident.failing_runs) == ("HTTP 502", 13)
    await pipeline.close(grace=0)
    await guarded.close()


async def test_an_ok_run_that_changes_nothing_leaves_almost_nothing_for_the_collector(tmp_path: Path) -> None:
    """The result path of a steady OK run (metrics row, incident bookkeeping) allocates a few
    containers, all freed at once: 1,000 runs never wake the garbage collector's youngest
    generation (700 containers by default)."""
    config = load_config(write_config(tmp_path, http_check("api"), sinks=("log",)))
    clock = FakeClock()
    guarded = GuardedStore(await SqliteStore.open(config.monitor.state_path), MonitorMetrics(), clock)
    pipeline = await Pipeline.open(config, guarded, {}, MonitorMetrics(), clock, None)
    result = RunResult("api", [UP], 0.01)
    for _ in range(10):
        await pipeline.on_result(result)
    gc.disable()
    try:
        before = gc.get_count()[0]
        for _ in range(1000):
            await pipeline.on_result(result)
        allocated = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert allocated < 100, f"{allocated} containers left alive by 1,000 OK runs"
    await pipeline.close(grace=0)
    await guarded.close()


def test_uvloop_is_the_default_loop_and_asyncio_an_opt_out() -> None:
    import uvloop

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert issubclass(event_loop.run(loop_type()), uvloop.Loop)
    assert not issubclass(event_loop.run(loop_type(), "asyncio"), uvloop.Loop)


@pytest.fixture
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


async def test_the_running_daemon_collects_garbage_rarely_and_freezes_what_start_up_built(
    collector_restored, daemon_base
) -> None:
    young, older, oldest = gc.get_threshold()
    assert young == gc_policy.YOUNG_THRESHOLD > 700
    assert (older, oldest) == (10, 10)
    assert gc.get_freeze_count() > 0


def test_the_system_clock_reads_without_an_event_loop_on_the_loops_own_clock() -> None:
    async def both() -> tuple[float, float]:
        return SystemClock().monotonic(), asyncio.get_running_loop().time()

    assert SystemClock().monotonic() <= SystemClock().monotonic()
    for loop in ("uvloop", "asyncio"):
        ours, loops = event_loop.run(both(), loop)  # type: ignore[arg-type]
        assert abs(ours - loops) < 1.0, "sleep_until's deadlines would not match the loop's timers"
