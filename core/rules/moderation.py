"""Chat moderation: mutes, blocked words and slow mode, and the check every
viewer's message passes (`moderate`). Admins and moderators are not subject to it.

Every change is an event (`user_muted`, `user_unmuted`, `moderation_updated`);
the blocked words themselves are never shown to viewers, only how many there are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.commands import Chat, Mute
from core.limits import (
    MAX_BLOCKED_WORD_CHARS,
    MAX_BLOCKED_WORDS,
    MAX_MUTED,
    MAX_SLOW_MODE_SECONDS,
    SLOW_MODE_SENDERS_KEPT,
)
from core.results import OK, Result
from core.state import StreamState, word_pattern
from runtime.clock import iso

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def moderate(state: StreamState, c: Chat, message: str, now: datetime) -> Result | None:
    """The refusal for a viewer's message that moderation stops, else None
    (and, under slow mode, the sender's clock is started)."""
    stamp = iso(now)
    for key in (c.user_id, c.session_id):
        if not key:
            continue
        until = state.muted.get(key)
        if until is not None:
            if until > stamp:
                return Result.rejected(f"You are muted in this chat until {until}", "muted", until=until)
            del state.muted[key]
    if state.blocked_re is not None and state.blocked_re.search(message.casefold()):
        return Result.rejected("Your message contains a word that is not allowed in this chat", "blocked_word")
    sender = c.user_id or c.session_id
    if state.slow_mode > 0 and sender:
        at = (now - _UNIX_EPOCH) // timedelta(milliseconds=1)
        last = state.last_chat_ms.get(sender)
        wait_ms = 0 if last is None else last + state.slow_mode * 1000 - at
        if wait_ms > 0:
            wait = -(-wait_ms // 1000)
            return Result.rejected(
                f"Slow mode is on: one message every {state.slow_mode} s; retry in {wait} s",
                "slow_mode",
                retryAfter=wait,
            )
        state.last_chat_ms[sender] = at
        state.last_chat_ms.move_to_end(sender)
        while len(state.last_chat_ms) > SLOW_MODE_SENDERS_KEPT:
            state.last_chat_ms.popitem(last=False)
    return None


def mute(state: StreamState, m: Mute, now: datetime) -> Result:
    target = m.target
    if m.message_seq is not None:
        record = next((r for r in state.recent_chat if r.seq == m.message_seq), None)
        if record is None:
            return Result.rejected(
                f"message {m.message_seq} is not in the recent chat: mute by userId or sessionId", "not_found"
            )
        target = record.user_id or record.session_id
    if not target:
        return Result.rejected("mute needs a userId, a sessionId or a messageId")
    stamp = iso(now)
    if m.until <= stamp:
        return Result.rejected("a mute must end in the future")
    if target not in state.muted and len(state.muted) >= MAX_MUTED:
        for key in [k for k, u in state.muted.items() if u <= stamp]:
            del state.muted[key]
        if len(state.muted) >= MAX_MUTED:
            return Result.rejected(f"at most {MAX_MUTED} viewers can be muted at once")
    state.muted[target] = m.until
    event = state.emit("user_muted", {"userKey": target, "until": m.until})
    return Result(ok=True, seq=event.seq, data={"userKey": target, "until": m.until})


def unmute(state: StreamState, target: str) -> Result:
    if state.muted.pop(target, None) is None:
        return OK  # unmuting twice is harmless
    event = state.emit("user_unmuted", {"userKey": target})
    return Result(ok=True, seq=event.seq, data={"userKey": target})


def set_blocked_words(state: StreamState, words: tuple[str, ...]) -> Result:
    cleaned: dict[str, None] = {}
    for word in words:
        w = word.strip().casefold() if isinstance(word, str) else ""
        if not w or len(w) > MAX_BLOCKED_WORD_CHARS:
            return Result.rejected(f"blocked words are 1 to {MAX_BLOCKED_WORD_CHARS} characters")
        cleaned[w] = None
    if len(cleaned) > MAX_BLOCKED_WORDS:
        return Result.rejected(f"at most {MAX_BLOCKED_WORDS} blocked words")
    state.blocked_words = list(cleaned)
    state.blocked_re = word_pattern(state.blocked_words)
    event = state.emit(
        "moderation_updated", {"slowModeSeconds": state.slow_mode, "blockedWords": len(state.blocked_words)}
    )
    return Result(ok=True, seq=event.seq, data={"blockedWords": list(state.blocked_words)})


def set_slow_mode(state: StreamState, seconds: int) -> Result:
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_SLOW_MODE_SECONDS:
        return Result.rejected(f"slow mode is 0 to {MAX_SLOW_MODE_SECONDS} seconds")
    state.slow_mode = seconds
    if seconds == 0:
        state.last_chat_ms.clear()
    event = state.emit(
        "moderation_updated", {"slowModeSeconds": state.slow_mode, "blockedWords": len(state.blocked_words)}
    )
    return Result(ok=True, seq=event.seq, data={"slowModeSeconds": seconds})
