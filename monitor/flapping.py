"""Nagios-style flap detection: the weighted percent of state changes over the last 21 runs,
newer changes weighing more (0.8 to 1.2), with hysteresis between a low and a high threshold."""

import itertools
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
        self._history: list[bool] = []
        """The last WINDOW runs, oldest first (a list: a third of a deque's memory, 10,000 times)."""

    def snapshot(self) -> tuple[list[bool], bool]:
        """The runs in the window (oldest first) and whether the check flaps, to restore it from."""
        return list(self._history), self.flapping

    def restore(self, history: list[bool], flapping: bool) -> None:
        self._history = list(history[-WINDOW:])
        self.percent = percent_state_change(self._history)
        self.flapping = flapping

    def record_steady(self, failing: bool) -> bool:
        """Record the run only if the window holds no change and this run changes nothing;
        whether it did."""
        history = self._history
        if self.percent == 0.0 and not self.flapping and history and history[-1] == failing:
            if len(history) < WINDOW:  # all its runs alike: a full window stays as it is
                history.append(failing)
            return True
        return False

    def record(self, failing: bool) -> FlapChange | None:
        if self.record_steady(failing):
            return None
        self._history.append(failing)
        if len(self._history) > WINDOW:
            del self._history[0]
        self.percent = percent_state_change(self._history)
        if not self.flapping and self.percent > self.high:
            self.flapping = True
            return FlapChange.STARTED
        if self.flapping and self.percent < self.low:
            self.flapping = False
            return FlapChange.STOPPED
        return None
