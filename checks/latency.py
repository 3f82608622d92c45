"""A latency baseline learnt from recent good runs, to tell "slower than usual" from noise."""

import statistics
from collections import deque


class LatencyBaseline:
    """Rolling median of the last `window` good latencies; judges only after `min_samples`."""

    def __init__(self, window: int = 50, min_samples: int = 10) -> None:
        self._window = window
        self._samples: deque[float] | None = None
        """Made by the first `learn`: most checks judge no degradation, and 10,000 empty deques
        would hold 7 MiB."""
        self._min_samples = min_samples

    def learn(self, latency: float) -> None:
        if self._samples is None:
            self._samples = deque(maxlen=self._window)
        self._samples.append(latency)

    @property
    def ready(self) -> bool:
        return self._samples is not None and len(self._samples) >= self._min_samples

    def median(self) -> float | None:
        return statistics.median(self._samples) if self.ready else None

    def excess_percent(self, latency: float) -> float | None:
        """How far `latency` is above the baseline, in percent; None until the baseline is ready."""
        median = self.median()
        if median is None or median <= 0:
            return None
        return (latency / median - 1.0) * 100.0
