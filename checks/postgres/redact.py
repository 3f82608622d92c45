"""Text that leaves the check: query text without its literals, error text without the DSN's password."""

import re
from urllib.parse import parse_qs, unquote, urlsplit

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
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*):[^@\s]*@")


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


class SecretScrubber:
    """Removes a DSN's password, in each spelling it may take, from text shown to people."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        passwords = [parts.password or "", *parse_qs(parts.query).get("password", [])]
        spellings = {dsn, *passwords, *(unquote(password) for password in passwords)}
        self._secrets = sorted((secret for secret in spellings if secret), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _URL_PASSWORD.sub(r"\1:***@", text)


def describe_target(dsn: str) -> str:
    """host:port/database from the DSN, without the user's credentials."""
    parts = urlsplit(dsn)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    return f"{hosts}{parts.path}"
