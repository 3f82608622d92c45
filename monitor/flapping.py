"""Nagios-style flap detection: the weighted percent of state changes over the last 21 runs,
newer changes weighing more (0.8 to 1.2), with hysteresis between a low and a high threshold."""

import itertools
from collections import deque
from enum import StrEnum

WINDOW = 21
_TRANSITIONS = WINDOW - 1


class FlapChange(StrEnum):
    STARTED = "started"
    STOPPED = "stopped"


def percent_state_change(history: list[bool]) -> float:
    """Weighted share of changes between consecutive runs, over a full window's 20 transitions."""
    changes = [a != b for a, b in itertools.pairwise(history)]
    offset = _TRANSITIONS - len(changes)
    total = 0.0
    for index, changed in enumerate(changes):
        if changed:
            total += 0.8 + 0.4 * (index + offset) / (_TRANSITIONS - 1)
    return total / _TRANSITIONS * 100


class FlapDetector:
    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high
        self.flapping = False
        self.percent = 0.0
        self._history: deque[bool] = deque(maxlen=WINDOW)

    def snapshot(self) -> tuple[list[bool], bool]:
        """The runs in the window (oldest first) and whether the check flaps, to restore it from."""
        return list(self._history), self.flapping

    def restore(self, history: list[bool], flapping: bool) -> None:
        self._history = deque(history, maxlen=WINDOW)
        self.percent = percent_state_change(list(self._history))
        self.flapping = flapping

    def record(self, failing: bool) -> FlapChange | None:
        if self.percent == 0.0 and self._history and self._history[-1] == failing:
            self._history.append(failing)  # a steady check: no change in the window, none now
            return None
        self._history.append(failing)
        self.percent = percent_state_change(list(self._history))
        if not self.flapping and self.percent > self.high:
            self.flapping = True
            return FlapChange.STARTED
        if self.flapping and self.percent < self.low:
            self.flapping = False
            return FlapChange.STOPPED
        return None
