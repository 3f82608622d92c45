"""Storm control groups a burst of initial alerts (never holding a P1), and user templates
override the shipped ones after check-config has validated them."""

from pathlib import Path

import pytest

from alerting.base import NotificationKind as Kind
from alerting.messages import render, use_templates_dir
from monitor.cli import main
from monitor.model import Finding, Severity, Status
from tests.alerting_helpers import notification
from tests.incident_harness import Harness, http_check, write_config

STORM = """
[alerting]
storm_threshold = 3
storm_window = "1m"
"""


async def test_a_burst_of_incidents_becomes_one_grouped_message_but_p1_is_never_held(tmp_path, fake_clock) -> None:
    checks = "".join(http_check(f"c{i}", failure_threshold="1") for i in range(7))
    harness = await Harness.open(write_config(tmp_path, checks, STORM, sinks=("log",)), fake_clock)
    try:
        p2 = Finding("down", Status.CRITICAL, "down", Severity.P2)
        for i in range(6):
            await harness.observe(f"c{i}", [p2])
        await harness.observe("c6", [Finding("down", Status.CRITICAL, "down", Severity.P1)])
        sent = [(r.kind, r.notification.incident.key) for r in harness.sinks["log"].received]
        assert sent == [(Kind.INITIAL, "c0/down"), (Kind.INITIAL, "c1/down"), (Kind.INITIAL, "c2/down"),
                        (Kind.INITIAL, "c6/down")]
        await harness.minutes(1.05)
        grouped = harness.sinks["log"].received[-1].notification
        assert grouped.kind is Kind.GROUPED
        assert [incident.key for incident in grouped.group] == ["c3/down", "c4/down", "c5/down"]
        text = render(grouped).text
        assert text.startswith("🚨 3 INCIDENTS DETECTED 🚨")
        assert "[P2] #4 c3/down: down" in text
    finally:
        await harness.close()


@pytest.fixture
def templates(tmp_path: Path):
    directory = tmp_path / "templates"
    directory.mkdir()
    yield directory
    use_templates_dir(None)


def test_a_user_template_overrides_the_shipped_one(templates: Path) -> None:
    (templates / "initial.txt.j2").write_text("PAGE {{ incident.severity.value }} {{ incident.key }}\n")
    use_templates_dir(str(templates))
    assert render(notification()).text == "PAGE P1 api/down\n"
    assert render(notification(Kind.RESOLUTION)).text.startswith("✅ INCIDENT RESOLVED")


def test_check_config_rejects_a_broken_template_with_its_line(tmp_path: Path, templates: Path, capsys) -> None:
    (templates / "initial.txt.j2").write_text("ok\n{% if incident.check %}\nno endif\n")
    (templates / "resolution.txt.j2").write_text("{{ incident.no_such_field }}\n")
    path = write_config(tmp_path, "", f'[alerting]\ntemplates_dir = "{templates}"\n', sinks=("log",))
    assert main(["check-config", "--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: alerting.templates_dir: initial.txt.j2 line 2: Unexpected end of template")
    (templates / "initial.txt.j2").write_text("fine {{ incident.check }}\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert "resolution.txt.j2" in capsys.readouterr().err


async def test_a_restart_after_a_storm_pages_no_incident_twice(tmp_path, fake_clock) -> None:
    """Failure 3 of issue 10: the grouped message's outbox row named its first incident only,
    so after a clean restart 5 of the 6 grouped incidents were paged again."""
    checks = "".join(http_check(f"c{i}", failure_threshold="1") for i in range(8))
    storm = '[alerting]\nstorm_threshold = 2\nstorm_window = "1m"\n'
    harness = await Harness.open(write_config(tmp_path, checks, storm, sinks=("log",)), fake_clock)
    try:
        for i in range(8):
            await harness.observe(f"c{i}", [Finding("down", Status.CRITICAL, "down", Severity.P2)])
        await harness.minutes(1.05)
        before = list(harness.sinks["log"].received)
        announced = [i.key for r in before for i in (r.notification.group or (r.notification.incident,))]
        assert sorted(announced) == [f"c{i}/down" for i in range(8)]
        assert before[-1].kind is Kind.GROUPED and len(before[-1].notification.group) == 6

        await harness.restart()
        await harness.pipeline.announce_unannounced()
        await harness.minutes(1.05)

        assert harness.sinks["log"].received == before
    finally:
        await harness.close()
