"""From query results to findings: each code's thresholds, wording and default severity."""

import re
from collections.abc import Callable
from datetime import datetime

import asyncpg

from checks.base import Finding, Severity, Status, format_duration
from checks.postgres.config import PostgresCheckConfig
from checks.postgres.errors import describe_error
from checks.postgres.queries import Backend, ErrorRows, ServerState, Sessions, quote_identifier
from checks.postgres.redact import redact_query

UNREACHABLE = "unreachable"
CONNECTIONS_HIGH = "connections_high"
LONG_QUERIES = "long_queries"
IDLE_IN_TRANSACTION = "idle_in_transaction"
BLOCKED = "blocked"
ERROR_LOGS = "error_logs"
WRAPAROUND = "wraparound"
PRIVILEGES = "privileges"

EVIDENCE_SESSIONS = 10
"""Sessions listed in a finding's evidence; the summary counts them all."""
EVIDENCE_QUERY_CHARS = 300
XID_WRAPAROUND_LIMIT = 2**31
_BARE_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")


def connected(target: str, server: ServerState, used: int | None) -> Finding:
    """The OK finding of `unreachable`; `used` is None when the role cannot count sessions."""
    summary = f"connected to {target} as {server.role}"
    if used is None:
        return Finding(UNREACHABLE, Status.OK, summary)
    usable = server.usable_connections
    values = {"used_slots": float(used), "usable_slots": float(usable)}
    return Finding(UNREACHABLE, Status.OK, f"{summary}, {used}/{usable} slots used", values=values)


def unreachable(target: str, reason: str, error: str) -> Finding:
    return Finding(
        code=UNREACHABLE,
        status=Status.CRITICAL,
        summary=f"{target} unreachable: {reason}",
        severity=Severity.P1,
        evidence=(f"error: {error}",),
        blocks=("*",),
    )


def refused_as_full(target: str, error: str) -> Finding:
    """The server refused our new connection because no slot is left (SQLSTATE 53300)."""
    return Finding(
        code=CONNECTIONS_HIGH,
        status=Status.CRITICAL,
        summary=f"{target}: too many connections, the server refuses new ones (no slots left)",
        severity=Severity.P1,
        evidence=(f"error: {error}",),
        blocks=("*",),
    )


def connection_usage(
    server: ServerState, by_state: dict[str | None, int], config: PostgresCheckConfig
) -> list[Finding]:
    used = sum(by_state.values())
    usable = server.usable_connections
    percent = 100.0 * used / usable if usable > 0 else 100.0
    states = ", ".join(f"{state or 'unknown'} {count}" for state, count in sorted(by_state.items(), key=_state_order))
    reserved = f"max_connections {server.max_connections}, {server.superuser_reserved} reserved for superusers"
    if server.reserved:
        reserved += f", {server.reserved} by reserved_connections"
    evidence = (f"client sessions by state: {states}", reserved)
    values = {"used": float(used), "usable": float(usable), "percent": percent}
    in_use = f"{used}/{usable} connection slots in use ({percent:.0f}%"
    if used >= usable:
        status, severity = Status.CRITICAL, Severity.P1
        summary = f"no connection slots left: {in_use}), new connections are refused (too many connections)"
    elif percent >= config.connections_critical_percent:
        status, severity = Status.CRITICAL, Severity.P2
        summary = f"{in_use}, critical at {config.connections_critical_percent:g}%)"
    elif percent >= config.connections_warning_percent:
        status, severity = Status.WARNING, Severity.P3
        summary = f"{in_use}, warning at {config.connections_warning_percent:g}%)"
    else:
        return []
    return [Finding(CONNECTIONS_HIGH, status, summary, severity, evidence, values)]


def long_queries(found: Sessions, config: PostgresCheckConfig) -> list[Finding]:
    longest = found.longest
    if longest is None:
        return []
    critical = longest.seconds > config.long_query_critical
    summary = (
        f"{_plural(found.total, 'query', 'queries')} running longer than {format_duration(config.long_query)}, "
        f"longest {format_duration(longest.seconds)} (pid {longest.pid})"
    )
    return [
        Finding(
            code=LONG_QUERIES,
            status=Status.CRITICAL if critical else Status.WARNING,
            summary=summary,
            severity=Severity.P2 if critical else Severity.P3,
            evidence=_evidence(found, lambda backend: f"running {format_duration(backend.seconds)}"),
            values=_session_values(found),
        )
    ]


def idle_in_transaction(found: Sessions, config: PostgresCheckConfig) -> list[Finding]:
    longest = found.longest
    if longest is None:
        return []
    summary = (
        f"{_plural(found.total, 'session')} idle in a transaction longer than "
        f"{format_duration(config.idle_in_transaction)}, longest {format_duration(longest.seconds)} (pid {longest.pid})"
    )
    return [
        Finding(
            code=IDLE_IN_TRANSACTION,
            status=Status.WARNING,
            summary=summary,
            severity=Severity.P3,
            evidence=_evidence(found, lambda backend: f"idle for {format_duration(backend.seconds)}", "last query"),
            values=_session_values(found),
        )
    ]


def blocked(found: Sessions, config: PostgresCheckConfig) -> list[Finding]:
    longest = found.longest
    if longest is None:
        return []
    summary = (
        f"{_plural(found.total, 'session')} waiting on a lock longer than {format_duration(config.blocked)}, "
        f"longest {format_duration(longest.seconds)} (pid {longest.pid} blocked by {_pids(longest.blocking_pids)})"
    )
    return [
        Finding(
            code=BLOCKED,
            status=Status.WARNING,
            summary=summary,
            severity=Severity.P3,
            evidence=_evidence(found, _waiting),
            values=_session_values(found),
        )
    ]


def error_rows(rows: ErrorRows, config: PostgresCheckConfig) -> list[Finding]:
    if rows.count <= config.error_threshold:
        return []
    summary = (
        f"{_plural(rows.count, 'row')} in {config.error_table} in the last {format_duration(config.error_window)} "
        f"(threshold {config.error_threshold})"
    )
    evidence = (f"latest: {_timestamp(rows.latest)}",) if rows.latest is not None else ()
    return [Finding(ERROR_LOGS, Status.WARNING, summary, Severity.P3, evidence, {"rows": float(rows.count)})]


def error_table_unusable(exc: Exception, config: PostgresCheckConfig, role: str) -> Finding:
    table, column = config.error_table, config.error_time_column
    match exc:
        case asyncpg.UndefinedTableError() | asyncpg.InvalidSchemaNameError():
            summary = f'error table {table} does not exist (create it, or set error_table = "" to turn this off)'
        case asyncpg.UndefinedColumnError():
            summary = f"error table {table} has no column {column} (set error_time_column)"
        case asyncpg.InsufficientPrivilegeError():
            summary = f"permission denied on error table {table}: GRANT SELECT ON {table} TO {_role_sql(role)}"
        case _:
            return not_checked(ERROR_LOGS, f"rows in {table}", exc)
    return Finding(ERROR_LOGS, Status.UNKNOWN, summary, Severity.P3, (f"error: {describe_error(exc)}",))


def wraparound(server: ServerState, config: PostgresCheckConfig) -> list[Finding]:
    percent = 100.0 * server.oldest_xid_age / XID_WRAPAROUND_LIMIT
    if percent <= config.wraparound_percent:
        return []
    summary = (
        f"database {server.oldest_xid_database}: oldest transaction ID age {server.oldest_xid_age:,} is "
        f"{percent:.3g}% of the 2^31 wraparound limit (threshold {config.wraparound_percent:g}%)"
    )
    evidence = (
        "autovacuum is not freezing old rows fast enough; at the limit the server stops accepting writes",
        f"find the oldest tables in {server.oldest_xid_database} with age(relfrozenxid) and VACUUM (FREEZE) them",
    )
    values = {"xid_age": float(server.oldest_xid_age), "percent": percent}
    return [Finding(WRAPAROUND, Status.WARNING, summary, Severity.P2, evidence, values)]


def missing_privileges(role: str) -> Finding:
    return Finding(
        code=PRIVILEGES,
        status=Status.UNKNOWN,
        summary=(
            f"role {role} cannot see other sessions' state and query times (it lacks pg_read_all_stats), so "
            f"connections, long queries, idle transactions and lock waits are not checked: "
            f"GRANT pg_monitor TO {_role_sql(role)}"
        ),
        severity=Severity.P3,
        blocks=(CONNECTIONS_HIGH, LONG_QUERIES, IDLE_IN_TRANSACTION, BLOCKED),
    )


def not_checked(code: str, what: str, exc: Exception) -> Finding:
    """A diagnostic query failed (statement or lock timeout, missing object, ...): unknown, never OK."""
    return Finding(code, Status.UNKNOWN, f"could not check {what}: {describe_error(exc)}", Severity.P3)


def _evidence(found: Sessions, age: Callable[[Backend], str], query_label: str = "query") -> tuple[str, ...]:
    lines = [_describe_backend(backend, age(backend), query_label) for backend in found.backends[:EVIDENCE_SESSIONS]]
    if found.total > len(lines):
        lines.append(f"... and {found.total - len(lines)} more")
    return tuple(lines)


def _describe_backend(backend: Backend, age: str, query_label: str) -> str:
    parts = [f"pid {backend.pid}", f"user {backend.user or '?'}"]
    if backend.application:
        parts.append(f"application {backend.application}")
    parts += [age, f"state {backend.state or '?'}"]
    query = redact_query(backend.query or "", EVIDENCE_QUERY_CHARS)
    return ", ".join(parts) + f", {query_label}: {query or '(none)'}"


def _state_order(item: tuple[str | None, int]) -> str:
    return item[0] or ""


def _waiting(backend: Backend) -> str:
    return f"waiting {format_duration(backend.seconds)}, blocked by {_pids(backend.blocking_pids)}"


def _session_values(found: Sessions) -> dict[str, float]:
    longest = found.longest
    return {"count": float(found.total), "longest_seconds": longest.seconds if longest else 0.0}


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _pids(pids: tuple[int, ...]) -> str:
    return "pid " + ", ".join(map(str, pids)) if pids else "an unknown session"


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _role_sql(role: str) -> str:
    return role if _BARE_IDENTIFIER.match(role) else quote_identifier(role)
