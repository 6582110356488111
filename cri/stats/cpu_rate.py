"""usage_nano_cores: a rate between two samples of a cumulative counter, kept per object.

kubelet, metrics-server and `crictl stats` each ask in their own rhythm. A rate over a window of
a few milliseconds between two of them is noise, so a sample replaces the previous one only once
MIN_WINDOW_NS have passed; until then the last computed rate is answered again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

MIN_WINDOW_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class _Sample:
    at_ns: int
    usage_ns: int
    rate: int | None


class UsageRates:
    def __init__(self, min_window_ns: int = MIN_WINDOW_NS) -> None:
        self._min_window_ns = min_window_ns
        self._samples: dict[str, _Sample] = {}
        self._lock = threading.Lock()

    def rate(self, key: str, usage_ns: int, at_ns: int) -> int | None:
        """Nanocores used since the previous sample of `key`; None on its first sample."""
        with self._lock:
            previous = self._samples.get(key)
            if previous is None or usage_ns < previous.usage_ns:
                self._samples[key] = _Sample(at_ns, usage_ns, None)
                return None
            elapsed = at_ns - previous.at_ns
            if elapsed < self._min_window_ns:
                return previous.rate
            rate = (usage_ns - previous.usage_ns) * 1_000_000_000 // elapsed
            self._samples[key] = _Sample(at_ns, usage_ns, rate)
            return rate

    def retain(self, keys: Iterable[str]) -> None:
        """Forget every object not in `keys` (removed containers and pods)."""
        keep = set(keys)
        with self._lock:
            for key in [k for k in self._samples if k not in keep]:
                del self._samples[key]
