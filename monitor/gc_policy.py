"""The cyclic garbage collector's policy for a process that runs thousands of checks a second.

CPython collects its youngest generation every 700 container objects allocated and not yet
freed. A run through aiohttp leaves a few dozen such objects in reference cycles (futures,
tasks, the exceptions and tracebacks between them) that only the collector frees, so at 1,000
checks a second the default policy collected several dozen times a second, and moved every
in-flight request's objects into the older generations, whose collections scan them again. In
bench_scale.py that was a fifth of the daemon's CPU (65 µs of 316 µs a run at 1,000 x 1 s)
and the longest event-loop stalls; with the threshold below the collector costs a few percent
and the garbage waiting for it at most a few MiB.

What start-up builds (config models, checks, tasks, connections) lives as long as the process:
frozen out of the collector's sight, each full collection scans only what runs replace.
"""

import asyncio
import gc

YOUNG_THRESHOLD = 50_000
"""Container objects allocated (net of frees) between two collections of the youngest generation."""


def apply() -> None:
    """Collect the youngest generation every YOUNG_THRESHOLD objects, the older ones as CPython does."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def freeze_now_and_after(seconds: float) -> None:
    """Freeze what exists now, and again after `seconds` (once every check has run and its
    per-check state, connections and buffers exist). Needs a running event loop."""
    gc.freeze()
    asyncio.get_running_loop().call_later(seconds, gc.freeze)
