"""Shared by the providers' parsers: vendor text made safe and short for a page, and the
"4m before detection" phrase."""

import re
from datetime import datetime

from monitor.durations import format_duration
from monitor.scrub import scrub

LINE_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean(text: object, limit: int = LINE_CHARS) -> str:
    """One line: control characters and runs of blanks become one space, secrets are
    scrubbed, and the result is cut to `limit` characters with a visible mark."""
    line = " ".join(_CONTROL.sub(" ", scrub(str(text))).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def relative(moment: datetime, detected_at: datetime) -> str:
    """`4m before detection`: to the minute past the first minute, which is all a page needs."""
    seconds = (detected_at - moment).total_seconds()
    shown = abs(seconds) if abs(seconds) < 60 else round(abs(seconds) / 60) * 60
    return f"{format_duration(shown)} {'before' if seconds >= 0 else 'after'} detection"


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
