"""The one secret scrubber: every text that leaves a check or a sink (summaries, evidence,
error texts, log lines) goes through `scrub`, which replaces with `***`

- every secret value the config resolved (`register_secret`: `*_env` values, header values),
  with the parts of a secret URL a server may echo back (path, query, password);
- the userinfo of any URL (`scheme://user:password@host`, `scheme://token@host`) and its
  base64 Basic-auth encoding;
- the values of query parameters whose names look like credentials (token, key, secret,
  password, signature, sig, auth, ...).
"""

import base64
import re
from urllib.parse import parse_qs, unquote, urlsplit

MASK = "***"
_MIN_SECRET_CHARS = 4
"""Shorter values would mask ordinary words; no real secret is that short."""

_CREDENTIAL_NAME = r"[\w.\-]*(?:token|key|secret|passw|pwd|signature|sig|auth|credential|session|private)[\w.\-]*"
_CREDENTIAL_QUERY = re.compile(rf"(?i)(?P<name>[?&;]{_CREDENTIAL_NAME}=)(?P<value>[^&#\s\"'<>]+)")
_CREDENTIAL_PARAMETER = re.compile(rf"(?i){_CREDENTIAL_NAME}")
_CREDENTIAL_HEADER = re.compile(rf"(?i){_CREDENTIAL_NAME}|cookie")
_URL_USERINFO = re.compile(r"(?i)(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s\"'<>]+)@")
_AUTH_SCHEME_VALUE = re.compile(
    # A credential has a digit, a capital past its first letter or base64 padding: not a word.
    r"\b(?P<scheme>[Bb]asic|[Bb]earer|BASIC|BEARER)(?P<space>\s+)(?=\S*[0-9+/=]|.[^\sA-Z]*[A-Z])(?P<value>[A-Za-z0-9._~+/\-]{8,}=*)"
)

_AUTH_SCHEME_WORDS = re.compile("asic|earer|ASIC|EARER")

_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()


def register_secret(value: str) -> None:
    """Mask `value` from now on, with its spellings a server may echo back."""
    global _ordered
    spellings = _spellings(value)
    if spellings <= _secrets:
        return
    _secrets.update(spellings)
    # Longest first, so a secret that contains another is masked whole.
    _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def register_header(name: str, value: str) -> None:
    """Mask a request header's value when its name says it carries a credential."""
    if _CREDENTIAL_HEADER.fullmatch(name):
        register_secret(value)


def scrub(text: str) -> str:
    """`text` with every secret it may hold replaced by ***."""
    if not text:
        return text
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    # Each pattern only where the text holds what it needs to match: most texts (an OK run's
    # "HTTP 200 in 3ms") hold none, and skip the three regex scans.
    if "://" in text:
        text = _URL_USERINFO.sub(_masked_userinfo, text)
    if "=" in text:
        text = _CREDENTIAL_QUERY.sub(lambda match: f"{match['name']}{MASK}", text)
    if _AUTH_SCHEME_WORDS.search(text) is None:
        return text
    return _AUTH_SCHEME_VALUE.sub(lambda match: f"{match['scheme']}{match['space']}{MASK}", text)


def scrub_lines(lines: tuple[str, ...]) -> tuple[str, ...]:
    return tuple([scrub(line) for line in lines]) if lines else lines


def _masked_userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    # user:password keeps the user name (it helps to know who failed to log in); a lone
    # userinfo is usually a token (https://TOKEN@host) and goes whole.
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{match['scheme']}{shown}@"


def _spellings(value: str) -> set[str]:
    found = {value, unquote(value)}
    if "://" in value:
        found |= _url_spellings(value)
    scheme, _, credential = value.partition(" ")
    if scheme.lower() in ("basic", "bearer", "token") and credential:
        found.add(credential.strip())
        found |= _basic_auth_spellings(credential.strip())
    return {spelling for spelling in found if len(spelling) >= _MIN_SECRET_CHARS}


def _url_spellings(url: str) -> set[str]:
    try:
        parts = urlsplit(url)
        password = parts.password or ""
        username = parts.username or ""
    except ValueError:
        return set()
    found = {password, unquote(password)}
    if parts.scheme in ("http", "https"):
        # A webhook URL's path and query are its secret; a DSN's are a database name and options.
        found |= {parts.query, unquote(parts.query)}
        if parts.path not in ("", "/"):
            found |= {parts.path, unquote(parts.path)}
    for name, values in parse_qs(parts.query).items():
        if _CREDENTIAL_PARAMETER.fullmatch(name):
            found.update(values)
    if username or password:
        found.add(base64.b64encode(f"{unquote(username)}:{unquote(password)}".encode()).decode())
        if not password:
            found.add(username)
    return found


def _basic_auth_spellings(credential: str) -> set[str]:
    """The user:password inside a Basic credential, and its password."""
    try:
        decoded = base64.b64decode(credential, validate=True).decode()
    except ValueError:
        return set()
    _user, colon, password = decoded.partition(":")
    return {decoded, password} if colon else set()
