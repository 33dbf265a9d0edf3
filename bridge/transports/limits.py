"""Per-client message rate limit: a token bucket per sender, refilled continuously.

The bucket holds one second's worth of messages (the burst); each message takes one
token. A message that finds the bucket empty is answered `busy` and not handled.
Buckets of clients idle for a minute are forgotten, so the table stays small.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

FORGET_AFTER_S = 60.0


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float | None = None) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst if burst is not None else max(rate_per_s, 1.0)
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, last refill time]
        self._lock = threading.Lock()
        self._swept_at = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def allow(self, key: Hashable, now: float | None = None) -> bool:
        """Take one token for key; False when the client is over its rate."""
        if not self.enabled:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [self.burst, now]
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate_per_s)
            bucket[1] = now
            if tokens < 1.0:
                bucket[0] = tokens
                return False
            bucket[0] = tokens - 1.0
            if now - self._swept_at > FORGET_AFTER_S:
                self._sweep(now)
            return True

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        for key in [k for k, (_, last) in self._buckets.items() if now - last > FORGET_AFTER_S]:
            del self._buckets[key]
