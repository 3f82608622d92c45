"""Shields-style SVG badges: a grey label, a coloured message, text in Verdana 11 px."""

from html import escape

from monitor.history.aggregate import Uptime

_COLOURS = {"ok": "#1a7f37", "warning": "#9a6700", "critical": "#cf222e", "unknown": "#6e40c9", "pending": "#57606a"}
_CHAR_WIDTH = 6.5
"""An estimate of Verdana 11 px's average advance: enough to size the two halves."""


def status_badge(label: str, status: str) -> str:
    return _badge(label, status, _COLOURS.get(status, _COLOURS["pending"]))


def uptime_badge(label: str, uptime: Uptime | None) -> str:
    ratio = uptime.ratio if uptime is not None else None
    if ratio is None:
        return _badge(label, "no data", _COLOURS["pending"])
    colour = _COLOURS["ok"] if ratio >= 0.999 else _COLOURS["warning"] if ratio >= 0.99 else _COLOURS["critical"]
    return _badge(label, f"{ratio * 100:.2f}%", colour)


def _badge(label: str, message: str, colour: str) -> str:
    left, right = _width(label), _width(message)
    total = left + right
    label, message = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img"'
        f' aria-label="{label}: {message}"><title>{label}: {message}</title>'
        f'<rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2}" y="14">{label}</text><text x="{left + right / 2}" y="14">{message}</text></g></svg>'
    )


def _width(text: str) -> int:
    return int(len(text) * _CHAR_WIDTH) + 12
