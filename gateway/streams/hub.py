"""Who watches what on this gateway, and local fan-out.

The hub holds this gateway's connections, which stream each one watches, and
the admin connections (which see every stream).

Fan-out: each event arrives already encoded (once, in the stream's actor).
The hub frames it once and writes the same bytes to every watcher:

* old apps (protocol 1) get every event as its own frame; the frames that
  arrive within `write_interval` go out in one socket write (one system call
  per viewer per tick, not per event: that call is most of the cost);
* opted-in apps (protocol 2) get one batch frame per stream per
  `batch_interval` holding every event of that interval, so a busy stream
  costs one frame per tick per viewer.

The ticks are adaptive (`core.pacing`): an event that finds the last write
(or batch) at least a gap ago goes out on the next turn of the event loop,
with whatever else arrived in that turn; one that arrives sooner waits for
the gap's end and goes with everything that arrived meanwhile. The gap is
twice what the last write took (writing takes at most half the gateway's
time), at most the interval. A quiet stream pays no tick, a few viewers are
barely held, and a big busy stream is written once per interval, as with a
fixed tick.

There is no backpressure here: a connection that cannot keep up is closed by
its own buffer limit (see `connection.py`).

The hub also counts sessions per stream, so a session watching through two
connections is one viewer: `watch` says when a session arrives on a stream,
`unwatch` when its last connection leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import structlog

from core.pacing import Pacer
from gateway.transport.connection import Connection
from gateway.transport.uvicorn_adapter import text_frame
from runtime.logs import debug_enabled

# An event as the hub gets it: its encoded text, or (for an event that each
# old app sees its own way) the text for opted-in apps and a function making
# an old app's version from its viewer key.
Personal = Callable[[str | None], str]
Delivery = str | tuple[str, Personal]

log = structlog.get_logger("gateway.hub")

DEFAULT_BATCH_INTERVAL = 0.1
DEFAULT_WRITE_INTERVAL = 0.04


class Hub:
    def __init__(
        self, batch_interval: float = DEFAULT_BATCH_INTERVAL, write_interval: float = DEFAULT_WRITE_INTERVAL
    ) -> None:
        self.batch_interval = batch_interval
        self.write_interval = write_interval
        self._write_pace = Pacer(write_interval)
        self._batch_pace = Pacer(batch_interval)
        self.connections: set[Connection] = set()
        self.admins: set[Connection] = set()
        self._single: defaultdict[str, set[Connection]] = defaultdict(set)  # protocol 1 watchers
        self._batched: defaultdict[str, set[Connection]] = defaultdict(set)  # protocol 2 watchers
        self._sessions: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._pending: dict[str, list[str]] = {}  # stream -> events waiting for the next batch
        self._pending_single: dict[str, list[Delivery]] = {}  # stream -> events waiting for the next write
        # stream -> connection -> how many of the waiting events it already has (in the
        # snapshot it got on joining): it gets only the ones after, at the same tick.
        self._joined_batch: dict[str, dict[Connection, int]] = {}
        self._joined_single: dict[str, dict[Connection, int]] = {}
        # The write or batch run scheduled (on the next turn of the loop, or at the interval's end).
        self._flush_timer: asyncio.Handle | None = None
        self._write_timer: asyncio.Handle | None = None
        self.frames_out = 0  # frames written or queued, for metrics
        # Told, once per stream per tick, how long its oldest event waited here before being written.
        self.on_fanout: Callable[[float], None] | None = None
        self._since_single: dict[str, float] = {}
        self._since_batch: dict[str, float] = {}

    # ------------------------------------------------------------ membership

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
        """Make `conn` watch `stream_id` (and nothing else), from the next event
        on. The caller has just given `conn` the state that includes every
        event already waiting here for a write or a batch, so `conn` gets only
        the events published after this call; the others get their tick as
        usual (a newcomer does not make the stream's watchers a frame of their
        own). True if its session is new to the stream: the caller must then
        tell the stream (Join)."""
        if conn.watching == stream_id:
            # Its protocol may have changed: what waits goes out under the old one first.
            self.flush(stream_id)
            self.write_pending(stream_id)
            self._group(conn, stream_id).add(conn)
            other = (self._single if conn.protocol >= 2 else self._batched).get(stream_id)
            if other is not None:
                other.discard(conn)
            return False
        self.unwatch(conn)
        conn.watching = stream_id
        self._group(conn, stream_id).add(conn)
        waiting, joined = (
            (self._pending, self._joined_batch) if conn.protocol >= 2 else (self._pending_single, self._joined_single)
        )
        if waiting.get(stream_id):
            joined.setdefault(stream_id, {})[conn] = len(waiting[stream_id])
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
        for joined in (self._joined_batch, self._joined_single):
            skips = joined.get(stream_id)
            if skips is not None:
                skips.pop(conn, None)
        for groups in (self._single, self._batched):
            members = groups.get(stream_id)
            if members is not None:
                members.discard(conn)
                if not members:
                    del groups[stream_id]
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
        return set(self._single.get(stream_id, ())) | set(self._batched.get(stream_id, ()))

    def has_audience(self, stream_id: str) -> bool:
        """Someone here receives the stream's events: a watcher, or any admin (admins see every stream)."""
        return bool(self.admins or self._single.get(stream_id) or self._batched.get(stream_id))

    def followers_without_stream(self) -> list[Connection]:
        """Old-app connections that watch nothing yet and follow whichever single stream is live."""
        return [c for c in self.connections if c.follows_sole_stream and c.watching is None]

    def _group(self, conn: Connection, stream_id: str) -> set[Connection]:
        return (self._batched if conn.protocol >= 2 else self._single)[stream_id]

    # ------------------------------------------------------------ fan-out

    def publish(self, stream_id: str, events: Iterable[Delivery]) -> None:
        """Deliver a stream's events, in order: in the next write to old apps,
        in the next batch to opted-in apps."""
        events = list(events)
        if not events:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._single.get(stream_id) or any(a.protocol < 2 for a in self.admins):
            self._since_single.setdefault(stream_id, now)
            self._pending_single.setdefault(stream_id, []).extend(events)
            if self._write_timer is None:
                self._write_timer = _schedule(loop, self._write_pace.delay(time.monotonic()), self.write_all)
        if self._batched.get(stream_id) or any(a.protocol >= 2 for a in self.admins):
            self._since_batch.setdefault(stream_id, now)
            self._pending.setdefault(stream_id, []).extend(e if isinstance(e, str) else e[0] for e in events)
            if self._flush_timer is None:
                self._flush_timer = _schedule(loop, self._batch_pace.delay(time.monotonic()), self.flush_all)

    def write_pending(self, stream_id: str) -> int:
        """Write the stream's waiting events to old apps now: each its own
        frame, all of them in one write per socket. Returns the frames written."""
        events = self._pending_single.pop(stream_id, None)
        joined = self._joined_single.pop(stream_id, None)
        if not events:
            return 0
        singles = self._single.get(stream_id, set()) | {a for a in self.admins if a.protocol < 2}
        sent = sum(self._write_events(conns, events[skip:]) for skip, conns in _by_skip(singles, joined, len(events)))
        self.frames_out += sent
        self._fanned_out(self._since_single.pop(stream_id, None))
        return sent

    @staticmethod
    def _write_events(singles: Iterable[Connection], events: list[Delivery]) -> int:
        """Write `events` to each old app, each its own frame, in one write per socket."""
        if all(isinstance(e, str) for e in events):  # the common case: the same bytes for everyone
            texts = [e for e in events if isinstance(e, str)]
            frames = b"".join(text_frame(t) for t in texts)
            return sum(len(texts) for conn in singles if conn.send_many(texts, frames))
        # Runs of shared events framed once; personal ones made per connection.
        segments: list[tuple[list[str], bytes] | Personal] = []
        for e in events:
            if isinstance(e, str):
                if segments and isinstance(segments[-1], tuple):
                    segments[-1][0].append(e)
                else:
                    segments.append(([e], b""))
            else:
                segments.append(e[1])
        segments = [(s[0], b"".join(text_frame(t) for t in s[0])) if isinstance(s, tuple) else s for s in segments]
        sent = 0
        for conn in singles:
            texts, parts = [], []
            for s in segments:
                if isinstance(s, tuple):
                    texts += s[0]
                    parts.append(s[1])
                else:
                    text = s(conn.viewer_key)
                    texts.append(text)
                    parts.append(text_frame(text))
            if conn.send_many(texts, b"".join(parts)):
                sent += len(texts)
        return sent

    def write_all(self) -> None:
        """Write every stream's waiting events to old apps (the write tick)."""
        self._write_timer = None
        started = time.monotonic()
        for stream_id in list(self._pending_single):
            self.write_pending(stream_id)
        self._write_pace.ran(started, time.monotonic() - started)

    def flush(self, stream_id: str) -> int:
        """Send the stream's waiting events now, as one batch frame to every
        opted-in watcher (and opted-in admin). Returns the frames written."""
        texts = self._pending.pop(stream_id, None)
        joined = self._joined_batch.pop(stream_id, None)
        if not texts:
            return 0
        targets = self._batched.get(stream_id, set()) | {a for a in self.admins if a.protocol >= 2}
        sent = 0
        for skip, conns in _by_skip(targets, joined, len(texts)):
            text = batch_frame(stream_id, texts[skip:])
            frame = text_frame(text)
            sent += sum(1 for conn in conns if conn.send_shared(text, frame))
        self.frames_out += sent
        self._fanned_out(self._since_batch.pop(stream_id, None))
        return sent

    def _fanned_out(self, since: float | None) -> None:
        if since is None:
            return
        waited = asyncio.get_running_loop().time() - since
        if self.on_fanout is not None:
            self.on_fanout(waited)
        if debug_enabled(log):  # stage timings (`LOG_LEVEL=debug`): publish to written
            log.debug("fanout_stages", written_ms=round(1000 * waited, 3))

    def flush_all(self) -> None:
        """Send every stream's waiting batch to opted-in apps (the batch tick)."""
        self._flush_timer = None
        started = time.monotonic()
        for stream_id in list(self._pending):
            self.flush(stream_id)
        self._batch_pace.ran(started, time.monotonic() - started)

    def broadcast(self, text: str) -> int:
        """Send to every connection of this gateway."""
        frame = text_frame(text)
        sent = sum(1 for conn in list(self.connections) if conn.send_shared(text, frame))
        self.frames_out += sent
        return sent


def _schedule(loop: asyncio.AbstractEventLoop, delay: float, run: Callable[[], None]) -> asyncio.Handle:
    """`run` on the next turn of the loop if `delay` is 0 (no timer), else in `delay` seconds."""
    return loop.call_soon(run) if delay <= 0.0 else loop.call_later(delay, run)


def _by_skip(
    targets: set[Connection], joined: dict[Connection, int] | None, waiting: int
) -> list[tuple[int, Iterable[Connection]]]:
    """`targets` grouped by how many of the `waiting` events each already has:
    0 for all but the newcomers of this tick (`joined`), whose snapshot held
    some; newcomers that have them all are left out. A few groups per tick,
    each framed once."""
    if not joined:
        return [(0, targets)]
    groups: dict[int, list[Connection]] = {}
    for conn, skip in joined.items():
        if skip < waiting and conn in targets:
            groups.setdefault(skip, []).append(conn)
    return [(0, targets.difference(joined)), *groups.items()]


def batch_frame(stream_id: str, texts: list[str]) -> str:
    """Several encoded events in one frame, without decoding them again."""
    return '{"type":"batch","streamId":"' + stream_id + '","events":[' + ",".join(texts) + "]}"
