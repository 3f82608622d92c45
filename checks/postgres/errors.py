"""What went wrong, in words an on-call engineer recognises, matched on exception class and
SQLSTATE rather than on message text (which differs between versions and languages)."""

import ssl

import asyncpg

_CONNECTION_LOST = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)


def is_connection_lost(exc: BaseException) -> bool:
    """True when a query failed because the connection went away, not because of the query.
    (TimeoutError is an OSError, but on a query it is the client-side timeout of that query.)"""
    return isinstance(exc, _CONNECTION_LOST) and not isinstance(exc, TimeoutError)


def connect_failure_reason(exc: BaseException, timeout: float) -> str:
    """The error class of a failed connection attempt (or of a connection lost mid-run)."""
    match exc:
        case asyncpg.InvalidAuthorizationSpecificationError():  # 28000, and 28P01 wrong password
            return "authentication failed"
        case asyncpg.TooManyConnectionsError():
            return "too many connections"
        case asyncpg.InvalidCatalogNameError():
            return "database does not exist"
        case asyncpg.CannotConnectNowError():
            return "server not accepting connections (starting up, shutting down or in recovery)"
        case asyncpg.AdminShutdownError() | asyncpg.CrashShutdownError():
            return "server shutting down"
        case ConnectionRefusedError():
            return "connection refused"
        case TimeoutError():
            return f"no connection within {timeout:g}s (timeout)"
        case ssl.SSLError():
            return "TLS error"
        case asyncpg.ClientConfigurationError() | ValueError():
            return "invalid DSN"
        case asyncpg.PostgresConnectionError() | asyncpg.InterfaceError():
            return "connection lost"
        case OSError():
            return f"cannot connect: {exc.strerror or exc}"
    return "connection failed"


def describe_error(exc: BaseException) -> str:
    """The exception as one line: its class, the SQLSTATE when the server sent one, and its message."""
    sqlstate = getattr(exc, "sqlstate", None)
    code = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    message = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}{code}: {message}"
