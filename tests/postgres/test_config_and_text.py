"""Without a server: the config a user writes, and the text the check lets out (alerts, logs)."""

import aiohttp
import pytest
from pydantic import ValidationError

from checks.base import CheckContext, Severity, Status
from checks.postgres import PostgresCheck
from checks.postgres.redact import redact_query
from monitor.clock import SystemClock
from monitor.metrics import MonitorMetrics
from monitor.scrub import register_secret, scrub

DSN = "postgresql://monitor:s3cr%40t-pw@db.internal:5432/app"


def config(**options: object) -> PostgresCheck.Config:
    return PostgresCheck.Config.model_validate({"type": "postgres", "timeout": "10s", **options})


def test_defaults_follow_the_issue() -> None:
    defaults = config(dsn=DSN)

    assert (defaults.connections_warning_percent, defaults.connections_critical_percent) == (80, 90)
    assert (defaults.long_query, defaults.long_query_critical) == (300, 1800)
    assert (defaults.idle_in_transaction, defaults.blocked) == (300, 60)
    assert (defaults.error_table, defaults.error_time_column, defaults.error_window) == (
        "error_logs",
        "created_at",
        3600,
    )
    assert (defaults.error_threshold, defaults.wraparound_percent, defaults.top_tables) == (0, 50, 10)


def test_dsn_env_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", DSN)

    assert config(dsn_env="TEST_DATABASE_URL").dsn_value() == DSN


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "set exactly one of dsn and dsn_env"),
        ({"dsn": DSN, "dsn_env": "TEST_DATABASE_URL"}, "set exactly one of dsn and dsn_env"),
        ({"dsn": "mysql://monitor:s3cr%40t-pw@db/app"}, "expected a postgresql:// URL"),
        ({"dsn": DSN, "connections_warning_percent": 95}, "connections_critical_percent must not be below"),
        ({"dsn": DSN, "long_query": "1h"}, "long_query_critical must not be shorter than long_query"),
        ({"dsn": DSN, "error_table": "a.b.c"}, 'expected "table" or "schema.table"'),
        ({"dsn": DSN, "long_query": "5 minutes"}, "invalid duration"),
        ({"dsn": DSN, "long_qeury": "5m"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_config_is_refused_without_echoing_the_dsn(
    options: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", DSN)

    with pytest.raises(ValidationError) as raised:
        config(**options)

    assert message in str(raised.value)
    assert "s3cr" not in str(raised.value)


def test_dsn_env_that_is_no_postgres_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", "s3cr3t-but-not-a-url")

    with pytest.raises(ValidationError) as raised:
        config(dsn_env="TEST_DATABASE_URL")

    assert "$TEST_DATABASE_URL does not hold a postgresql:// URL" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_config_repr_hides_the_dsn() -> None:
    assert "s3cr" not in repr(config(dsn=DSN))


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        (
            "SELECT * FROM users WHERE email = 'o''brien@x.com' AND id IN (1, 2, 3)",
            "SELECT * FROM users WHERE email = ? AND id IN (?, ...)",
        ),
        ("SELECT pg_sleep(8) /* user=bob@example.com */", "SELECT pg_sleep(?) /*...*/"),
        ("SELECT 1 -- card 4111\nFROM t", "SELECT ? /*...*/ FROM t"),
        ("SELECT E'it\\'s 42', $$body 42$$, $fn$ 42 $fn$", "SELECT ?, ..."),
        (
            'SELECT "col 1", t2.x3 FROM "Table" WHERE y = $1 AND z > -2.5e3',
            'SELECT "col 1", t2.x3 FROM "Table" WHERE y = $1 AND z > -?',
        ),
        ("INSERT INTO t VALUES ('text cut off by track_activity_query_size", "INSERT INTO t VALUES (?"),
        ("SELECT  x'FF',\n\tB'1010'", "SELECT ?, ..."),
    ],
)
def test_query_text_loses_its_literals_and_comments(query: str, shown: str) -> None:
    assert redact_query(query, 300) == shown


def test_query_text_is_capped() -> None:
    shown = redact_query("SELECT " + ", ".join(f"column_{n}" for n in range(100)), 50)

    assert len(shown) <= 50
    assert shown.endswith("...")


@pytest.mark.parametrize(
    "text",
    [
        f"could not connect to {DSN}",
        "password s3cr%40t-pw rejected",
        "password s3cr@t-pw rejected",
        "see postgres://someone:else-pw@host/db",
    ],
)
def test_scrubber_removes_the_password_in_each_spelling(text: str) -> None:
    register_secret(DSN + "?password=other-pw")
    scrubbed = scrub(text)

    assert "s3cr" not in scrubbed and "else-pw" not in scrubbed
    assert "***" in scrubbed


async def test_timeout_is_reported_as_unreachable_p1() -> None:
    async with aiohttp.ClientSession() as http:
        check = PostgresCheck("db", config(dsn=DSN), CheckContext(http, SystemClock(), MonitorMetrics()))

        finding = check.timeout_finding(10)

    assert (finding.code, finding.status, finding.severity) == ("unreachable", Status.CRITICAL, Severity.P1)
    assert finding.summary == "db.internal:5432/app unreachable: no result within 10s (timeout)"
