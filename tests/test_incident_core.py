"""The incident core on its own, with no store at all: a whole lifecycle through its events,
the transitions no one hears of, the change it hands the recorder, and the check memories
that carry a half-counted streak across a restart."""

import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from monitor.config import Config, load_config
from monitor.flapping import FlapChange, FlapDetector
from monitor.incident_core import IncidentCore, IncidentEvent
from monitor.incident_core import IncidentEventKind as Kind
from monitor.model import Finding, Severity, Status
from monitor.store import Acknowledgement, Silence
from tests.fakes import START
from tests.incident_harness import CHAIN, DOWN, UP, http_check, write_config


def two_of_two(tmp_path: Path, extra: str = CHAIN) -> Config:
    checks = http_check("api", failure_threshold="2", success_threshold="2") + http_check(
        "web", failure_threshold="1", depends_on='["api"]'
    )
    return load_config(write_config(tmp_path, checks, extra))


def kinds(events: list[IncidentEvent]) -> list[tuple[Kind, bool]]:
    return [(event.kind, event.heard) for event in events]


def test_a_whole_lifecycle_is_decided_through_events_without_any_store(tmp_path: Path) -> None:
    core = IncidentCore(two_of_two(tmp_path), last_incident_id=41)
    at = START

    assert core.observe("api", [DOWN], at) == []
    (opened,) = core.observe("api", [DOWN], at + timedelta(seconds=30))
    assert (opened.kind, opened.heard, opened.incident.id) == (Kind.OPENED, True, 42)
    assert opened.log == ("detected", DOWN.summary)
    change = core.take_change()
    assert [incident.id for incident in change.opened] == [42] and not change.saved
    assert [memory.check for memory in change.memories] == ["api"]

    escalated, *later = core.tick(at + timedelta(minutes=15, seconds=30), silences=[])
    assert (escalated.kind, escalated.level and escalated.level.level) == (Kind.ESCALATED, 2)
    assert [event.kind for event in later] == [Kind.RESPONSE_BREACHED, Kind.STATUS_UPDATE]

    request = Acknowledgement(7, 42, at, "alice", "on it")
    (acknowledged, *_) = core.tick(at + timedelta(minutes=16), silences=[], acknowledgements=[request])
    assert (acknowledged.kind, acknowledged.incident.acknowledged_by) == (Kind.ACKNOWLEDGED, "alice")
    change = core.take_change()
    assert change.acknowledgements_applied == [7] and [i.id for i in change.saved] == [42]

    assert core.observe("api", [UP], at + timedelta(minutes=17)) == []
    (resolved,) = core.observe("api", [UP], at + timedelta(minutes=18))
    assert (resolved.kind, resolved.heard, resolved.incident.state) == (Kind.RESOLVED, True, "resolved")
    assert resolved.incident.postmortem_path is not None
    assert core.open_incidents == []
    assert [incident.state for incident in core.take_change().saved] == ["resolved"]


def test_the_core_imports_no_store() -> None:
    code = (
        "import sys, monitor.incident_core\n"
        "banned = ('monitor.sqlite_store', 'monitor.sqlite_file', 'monitor.postgres_store', 'monitor.store_guard',"
        " 'monitor.recorder', 'sqlite3', 'asyncpg')\n"
        "print(sorted(name for name in banned if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "[]"


def test_transitions_no_one_hears_of_are_events_too(tmp_path: Path) -> None:
    core = IncidentCore(two_of_two(tmp_path))
    silence = Silence(1, "api", START, START + timedelta(hours=1), "deploy")
    core.tick(START, silences=[silence])

    partial = Finding("down", Status.CRITICAL, "partial", Severity.P3)
    core.observe("api", [partial], START)
    (held,) = core.observe("api", [partial], START + timedelta(seconds=30))
    assert kinds([held]) == [(Kind.HELD, False)] and held.log == ("detected", "partial")

    (folded,) = core.observe("web", [DOWN], START + timedelta(seconds=40))
    assert kinds([folded]) == [(Kind.FOLDED, False)] and folded.incident.impacted == ["web/down"]
    (raised,) = core.observe("api", [DOWN], START + timedelta(seconds=50))
    assert kinds([raised]) == [(Kind.SEVERITY_RAISED, False)] and raised.incident.severity is Severity.P1

    _, events = core.acknowledge(held.incident.id, "bob", START + timedelta(minutes=1))
    assert kinds(events) == [(Kind.ACKNOWLEDGED, False)]
    core.observe("api", [UP], START + timedelta(minutes=2))
    (resolved,) = core.observe("api", [UP], START + timedelta(minutes=3))
    assert kinds([resolved]) == [(Kind.RESOLVED, False)] and resolved.log is not None


def test_a_notice_muted_by_a_silence_is_an_unheard_event_noted_on_the_timeline(tmp_path: Path) -> None:
    core = IncidentCore(two_of_two(tmp_path))
    core.observe("api", [DOWN], START)
    core.observe("api", [DOWN], START)
    silence = Silence(3, "api", START, START + timedelta(hours=2), "deploy")
    events = core.tick(START + timedelta(minutes=15), silences=[silence])
    assert {(event.kind, event.heard) for event in events} == {
        (Kind.ESCALATED, False), (Kind.RESPONSE_BREACHED, False), (Kind.STATUS_UPDATE, False),
    }
    (incident,) = core.open_incidents
    assert any(entry.kind == "muted" and "silence #3" in entry.text for entry in incident.timeline)


def test_a_steady_run_writes_no_memory_and_a_restart_continues_a_half_counted_streak(tmp_path: Path) -> None:
    config = two_of_two(tmp_path)
    core = IncidentCore(config)
    for second in range(5):
        core.observe("api", [UP], START + timedelta(seconds=second))
    assert not core.take_change(), "an OK run that changes nothing writes nothing"

    core.observe("api", [DOWN], START + timedelta(seconds=10))
    memories = core.take_change().memories
    assert [memory.check for memory in memories] == ["api"]

    restarted = IncidentCore(config, memories=memories)
    (opened,) = restarted.observe("api", [DOWN], START + timedelta(seconds=40))
    assert opened.kind is Kind.OPENED and opened.incident.failing_runs == 2
    assert opened.incident.timeline[0].at == START + timedelta(seconds=10), "the first failure, before the restart"

    fresh = IncidentCore(config)
    assert fresh.observe("api", [DOWN], START + timedelta(seconds=40)) == [], "without the memory: 1 of 2"


def test_further_failing_runs_of_an_open_incident_change_no_memory(tmp_path: Path) -> None:
    core = IncidentCore(two_of_two(tmp_path))
    core.observe("api", [DOWN], START)
    core.observe("api", [DOWN], START)
    core.take_change()
    for second in range(1, 20):
        core.observe("api", [DOWN], START + timedelta(seconds=second))
    assert not core.take_change().memories


def test_a_check_removed_from_the_config_forgets_its_memory(tmp_path: Path) -> None:
    config = two_of_two(tmp_path)
    core = IncidentCore(config)
    core.observe("api", [DOWN], START)
    core.take_change()
    core.update_config(replace(config, checks={"web": config.checks["web"]}), START)
    assert core.take_change().forgotten == ["api"]


def test_a_long_steady_stretch_still_counts_failures_and_flapping_afterwards(tmp_path: Path) -> None:
    core = IncidentCore(two_of_two(tmp_path))
    for second in range(30):
        assert core.observe("api", [UP], START + timedelta(seconds=second)) == []
    assert not core.take_change()
    assert core.observe("api", [DOWN], START + timedelta(seconds=30)) == [], "1 of 2 failures"
    (opened,) = core.observe("api", [DOWN], START + timedelta(seconds=31))
    assert opened.kind is Kind.OPENED
    for second in range(32, 34):
        core.observe("api", [UP], START + timedelta(seconds=second))
    assert not core.open_incidents, "resolved after 2 good runs"
    for second in range(34, 64):
        assert core.observe("api", [UP], START + timedelta(seconds=second)) == []
    assert core.observe("api", [DOWN], START + timedelta(seconds=64)) == [], "a recovered check counts from 1 again"
    events = []
    for second in range(65, 85):
        events += core.observe("api", [UP if second % 2 else DOWN], START + timedelta(seconds=second))
    assert core.is_flapping("api"), "the steady runs filled the flapping window; the alternation shows in it"
    assert any(event.incident.code == "flapping" for event in events)


def test_a_check_restored_as_flapping_with_a_steady_window_stops_flapping() -> None:
    detector = FlapDetector(low=20.0, high=30.0)
    detector.restore([False] * 21, flapping=True)
    assert detector.record(False) is FlapChange.STOPPED
    assert not detector.flapping
