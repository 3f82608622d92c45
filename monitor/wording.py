"""Small phrases every output shares."""


def counted(count: int, noun: str) -> str:
    """`1 check`, `2 checks`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
