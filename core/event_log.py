"""The recent published events of a stream, encoded once, for gateways to poll.

A bounded ring: it holds the last `capacity` events, each as the exact text
sent to clients. `since(n)` answers "everything after seq n" or says that the
gap is older than what is kept.
"""

from __future__ import annotations

from collections import deque
from itertools import islice


class EventLog:
    def __init__(self, capacity: int, last_seq: int = 0) -> None:
        self._events: deque[tuple[int, str]] = deque(maxlen=capacity)
        self._last_seq = last_seq

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def first_seq(self) -> int:
        """The oldest seq still held (last_seq + 1 when empty)."""
        return self._events[0][0] if self._events else self._last_seq + 1

    def append(self, seq: int, text: str) -> None:
        """Events must come in order, without gaps."""
        if seq != self._last_seq + 1:
            raise ValueError(f"event {seq} after {self._last_seq}: events must be appended in order")
        self._events.append((seq, text))
        self._last_seq = seq

    def covers(self, after_seq: int) -> bool:
        """True if every event after `after_seq` is still held."""
        return self.first_seq - 1 <= after_seq <= self._last_seq

    def since(self, after_seq: int) -> list[tuple[int, str]]:
        """Events with seq > after_seq, oldest first. Requires `covers(after_seq)`."""
        if not self.covers(after_seq):
            raise ValueError(f"events after {after_seq} are no longer held (oldest is {self.first_seq})")
        n = self._last_seq - after_seq
        if n == 0:
            return []
        newest_first = list(islice(reversed(self._events), n))
        newest_first.reverse()
        return newest_first
