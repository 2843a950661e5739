"""Who watches what on this gateway, and local fan-out.

The hub holds this gateway's connections, which stream each one watches, and
the admin connections (which see every stream). `publish` writes the same
text to every watcher: each event is encoded once, upstream, and never again.
There is no backpressure here: a connection that cannot keep up is closed by
its own bounded queue (see `connection.py`).

The hub also counts sessions per stream, so a session watching through two
connections is one viewer: `watch` says when a session arrives on a stream,
`unwatch` when its last connection leaves.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable

from gateway.connection import Connection
from gateway.fanout_protocol import text_frame


class Hub:
    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.admins: set[Connection] = set()
        self._watchers: defaultdict[str, set[Connection]] = defaultdict(set)
        self._sessions: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)

    def remove(self, conn: Connection) -> tuple[str, str] | None:
        """Forget the connection. Returns (stream, session) if that session left the stream."""
        self.connections.discard(conn)
        self.admins.discard(conn)
        return self.unwatch(conn)

    def make_admin(self, conn: Connection) -> None:
        self.admins.add(conn)

    def watch(self, conn: Connection, stream_id: str) -> bool:
        """Make `conn` watch `stream_id` (and nothing else). True if its session
        is new to the stream: the caller must then tell the stream (Join)."""
        if conn.watching == stream_id:
            return False
        self.unwatch(conn)
        conn.watching = stream_id
        self._watchers[stream_id].add(conn)
        if conn.session_id is None or conn.is_admin:
            return False
        conn.counted_session = conn.session_id
        counts = self._sessions[stream_id]
        counts[conn.session_id] += 1
        return counts[conn.session_id] == 1

    def unwatch(self, conn: Connection) -> tuple[str, str] | None:
        """Stop `conn` watching. Returns (stream, session) if that was the
        session's last connection on the stream: the caller must tell the stream (Leave)."""
        stream_id, conn.watching = conn.watching, None
        if stream_id is None:
            return None
        watchers = self._watchers.get(stream_id)
        if watchers is not None:
            watchers.discard(conn)
            if not watchers:
                del self._watchers[stream_id]
        # What `watch` counted, whatever the connection became since (an admin, another session).
        key, conn.counted_session = conn.counted_session, None
        if key is None:
            return None
        counts = self._sessions.get(stream_id)
        if counts is None or counts[key] <= 0:
            return None
        counts[key] -= 1
        if counts[key] == 0:
            del counts[key]
            if not counts:
                del self._sessions[stream_id]
            return stream_id, key
        return None

    def sessions(self, stream_id: str) -> list[str]:
        """The distinct viewer sessions of a stream on this gateway."""
        return list(self._sessions.get(stream_id, ()))

    def watchers(self, stream_id: str) -> set[Connection]:
        return set(self._watchers.get(stream_id, ()))

    def publish(self, stream_id: str, texts: Iterable[str]) -> int:
        """Send the events to every watcher of the stream and every admin, in
        order: one frame per event to old apps, one batch frame holding them
        all to opted-in apps (encoded once). Returns the number of frames queued."""
        targets = self._watchers.get(stream_id, set()) | self.admins
        texts = list(texts)
        if not texts:
            return 0
        batch: tuple[str, bytes] | None = None
        singles: list[tuple[str, bytes]] | None = None
        sent = 0
        for conn in targets:
            if conn.protocol >= 2:
                if batch is None:
                    text = batch_frame(stream_id, texts)
                    batch = (text, text_frame(text))
                sent += conn.send_shared(*batch)
            else:
                if singles is None:
                    singles = [(t, text_frame(t)) for t in texts]
                for text, frame in singles:
                    sent += conn.send_shared(text, frame)
        return sent

    def broadcast(self, text: str) -> int:
        """Send to every connection of this gateway."""
        frame = text_frame(text)
        return sum(1 for conn in list(self.connections) if conn.send_shared(text, frame))

    def followers_without_stream(self) -> list[Connection]:
        """Old-app connections that watch nothing yet and follow whichever single stream is live."""
        return [c for c in self.connections if c.follows_sole_stream and c.watching is None]


def batch_frame(stream_id: str, texts: list[str]) -> str:
    """Several encoded events in one frame, without decoding them again."""
    return '{"type":"batch","streamId":"' + stream_id + '","events":[' + ",".join(texts) + "]}"
