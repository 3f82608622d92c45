"""Text that leaves the check: query text without its literals, the target without credentials.
Secrets in error text are monitor.scrub's job."""

import re
from urllib.parse import urlsplit

_SQL_TOKENS = re.compile(
    r"""
      (?P<identifier>"(?:[^"]|"")*"?)
    | (?P<dollar_string>\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<escape_string>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<string>(?:[BbXxNn]|[Uu]&)?'(?:[^']|'')*(?:'|\Z))
    | (?P<comment>/\*.*?(?:\*/|\Z)|--[^\n]*)
    | (?P<number>(?<![\w$])(?:\d+(?:\.\d*)?|\.\d+)(?:[Ee][+-]?\d+)?)
    """,
    re.VERBOSE | re.DOTALL,
)
_LIST_OF_PLACEHOLDERS = re.compile(r"\?(?:\s*,\s*\?)+")
_WHITESPACE = re.compile(r"\s+")


def redact_query(text: str, limit: int) -> str:
    """Query text fit for an alert: literals and comments replaced, on one line, at most `limit` chars.

    pg_stat_activity cuts text at track_activity_query_size, so a literal may be
    unterminated: it then runs to the end of the text and is redacted whole.
    """
    redacted = _SQL_TOKENS.sub(_replace_token, text)
    redacted = _WHITESPACE.sub(" ", redacted).strip()
    redacted = _LIST_OF_PLACEHOLDERS.sub("?, ...", redacted)
    if len(redacted) > limit:
        return redacted[: max(limit - 3, 0)].rstrip() + "..."
    return redacted


def _replace_token(match: re.Match[str]) -> str:
    if match.group("identifier") is not None:
        return match.group(0)
    if match.group("comment") is not None:
        return " /*...*/ "
    return "?"


def describe_target(dsn: str) -> str:
    """host:port/database from the DSN, without the user's credentials."""
    parts = urlsplit(dsn)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    return f"{hosts}{parts.path}"
