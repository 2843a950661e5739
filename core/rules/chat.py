"""Chat: a viewer's message becomes a numbered `chat_message`, kept in the
recent history and handed out once to be stored; a moderator can delete one.

A message with the sender's client id is stored once however often it is
resent. Viewers' messages pass `moderation.moderate` first.
"""

from __future__ import annotations

from datetime import datetime

from core.commands import Chat
from core.events import ChatRecord
from core.limits import DEFAULT_USERNAME, MAX_MESSAGE_CHARS, MAX_USERNAME_CHARS
from core.results import OK, Result
from core.rules.client_ops import remember, seen
from core.rules.moderation import moderate
from core.state import StreamState
from runtime.clock import iso


def chat(state: StreamState, c: Chat, now: datetime) -> Result:
    sender = c.user_id or c.session_id
    done = seen(state, sender, c.client_msg_id)
    if done is not None:
        return done
    message = c.message.strip() if isinstance(c.message, str) else ""
    if not message:
        return Result.rejected("chat_message needs a non-empty 'message'")
    if len(message) > MAX_MESSAGE_CHARS:
        return Result.rejected(f"chat message is longer than {MAX_MESSAGE_CHARS} characters")
    username = (c.username or "").strip() or DEFAULT_USERNAME
    if len(username) > MAX_USERNAME_CHARS:
        return Result.rejected(f"username is longer than {MAX_USERNAME_CHARS} characters")
    refused = None if (c.is_admin or c.moderator) else moderate(state, c, message, now)
    if refused is not None:
        return refused
    record = ChatRecord(
        seq=state.seq + 1,
        username=username,
        message=message,
        is_admin=c.is_admin,
        timestamp=iso(now),
        session_id=c.session_id,
        user_id=c.user_id,
    )
    event = state.emit("chat_message", record.to_wire())
    assert event.seq == record.seq
    state.recent_chat.append(record)
    state.new_chat.append(record)
    state.chat_count += 1
    return remember(state, sender, c.client_msg_id, Result(ok=True, seq=event.seq))


def delete_message(state: StreamState, seq: int) -> Result:
    """Hide a message: out of the recent history, `chat_message_deleted` for
    viewers, marked deleted in the chat store. Deleting twice is harmless."""
    if not isinstance(seq, int) or seq < 1 or seq > state.seq:
        return Result.rejected(f"message {seq} does not exist in this stream", "not_found")
    if seq in state.deleted_seqs:
        return OK  # deleted already
    kept = [r for r in state.recent_chat if r.seq != seq]
    if len(kept) != len(state.recent_chat):
        state.recent_chat.clear()
        state.recent_chat.extend(kept)
    state.deleted_seqs.append(seq)
    state.new_deletions.append(seq)
    event = state.emit("chat_message_deleted", {"messageId": seq})
    return Result(ok=True, seq=event.seq)
