"""The daemon's own work per run, with no I/O: what a steady OK run costs around the check.

    ./dev.sh bench run_path

A check that returns an HTTP check's OK finding at once, run 20,000 times (best of 5, process
CPU, uvloop) three ways in the same run: the check's `run()` alone (the baseline), through
`run_check` with the scheduler's deadlines, and through `run_check` plus the result handler of
a run that changes nothing (metrics row, incident bookkeeping, history). It prints µs per run
and the daemon's work over the baseline: the part of a run's CPU the daemon adds to the
request itself (bench_scale.py measures the whole run against bare aiohttp loops).
"""

import asyncio
import resource
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 20_000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_run_us(one: Callable[[], Awaitable[object]]) -> float:
    for _ in range(RUNS // 10):
        await one()
    best = float("inf")
    for _ in range(5):
        started = cpu_seconds()
        for number in range(RUNS):
            await one()
            if number % 10 == 0:
                await asyncio.sleep(0)  # the loop turns, as between real runs
        best = min(best, (cpu_seconds() - started) / RUNS * 1e6)
    return best


async def main() -> None:
    from checks.base import Check, CheckConfig, CheckContext, Finding, Status
    from monitor.clock import SystemClock
    from monitor.config import load_config
    from monitor.deadlines import Deadlines
    from monitor.history.service import History
    from monitor.history.stores import open_history_store
    from monitor.metrics import MonitorMetrics
    from monitor.pipeline import Pipeline
    from monitor.runner import run_check
    from monitor.sqlite_store import SqliteStore
    from monitor.status_page import LastRun
    from monitor.store_guard import GuardedStore

    class Answers(Check[CheckConfig]):
        type_name = "answers"
        Config = CheckConfig

        async def run(self) -> list[Finding]:
            return [Finding("down", Status.OK, "HTTP 200 in 3ms", values={"latency_seconds": 0.003})]

    workdir = Path(tempfile.mkdtemp(prefix="bench-run-path-"))
    (workdir / "monitor.toml").write_text(
        f'[monitor]\nstate_path = "{workdir}/state.db"\nincident_log = "{workdir}/incidents.log"\n'
        '[checks.api]\ntype = "http"\nurl = "http://127.0.0.1:9/"\n'
    )
    config = load_config(workdir / "monitor.toml")
    clock = SystemClock()
    metrics = MonitorMetrics()
    store = GuardedStore(await SqliteStore.open(config.monitor.state_path), metrics, clock)
    pipeline = await Pipeline.open(config, store, {}, metrics, clock, None)
    history = History(open_history_store(store, config.monitor.state_path), clock, lambda: ([], []))
    check = Answers("api", CheckConfig(type="answers"), CheckContext(None, clock, metrics))  # type: ignore[arg-type]
    deadlines = Deadlines(asyncio.get_running_loop())
    last_runs: dict[str, LastRun] = {}

    async def handled() -> None:  # what Daemon._on_result does
        result = await run_check(check, 5.0, deadlines)
        finished = clock.now()
        last_runs[result.check] = LastRun(result, finished)
        if await pipeline.on_result(result, finished):
            history.record(result.check, finished, True, result.duration)

    alone = await per_run_us(check.run)
    wrapped = await per_run_us(lambda: run_check(check, 5.0, deadlines))
    whole = await per_run_us(handled)
    print(f"per run, {RUNS:,} runs, best of 5, uvloop: check.run() alone {alone:.1f} µs (baseline);"
          f" run_check {wrapped:.1f} µs; run_check + result handler {whole:.1f} µs")
    print(f"  the daemon's own work per run: {whole - alone:.1f} µs ({whole / alone:.1f}x the check alone)")
    await pipeline.close(grace=0)
    await history.store.close()
    await store.close()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
