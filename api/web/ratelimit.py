"""A sliding-window limit on anonymous public reports, kept in this process's memory.

It counts reports from everyone together: the form keeps no IP address or fingerprint, so it
cannot tell senders apart. With several API processes each has its own window (the total
accepted is at most processes times limit). Times come from the application's clock.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta


class SlidingWindow:
    def __init__(self, limit: int, window: timedelta) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[datetime] = deque()
        self._lock = threading.Lock()

    def allow(self, now: datetime) -> bool:
        """Count one attempt now; False when the window is already full."""
        with self._lock:
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return False
            self._times.append(now)
            return True
