"""Chat: numbered, bounded history, refused without side effects, resends stored once."""

from __future__ import annotations

import pytest

from core.commands import Chat
from core.commit import take_events
from core.limits import MAX_MESSAGE_CHARS
from tests.core.helpers import apply, new_state, types


class TestChat:
    def test_message_numbered_stored_and_recent(self) -> None:
        s = new_state(history_size=2)
        r = apply(
            s,
            Chat("bob", "  hi  ", is_admin=False, session_id="s1"),
            Chat("", "second", is_admin=True),
            Chat("eve", "third", is_admin=False),
        )
        assert [x.seq for x in r] == [1, 2, 3]
        events = take_events(s, clock=0.0)
        assert types(events) == ["chat_message"] * 3
        assert events[0].body["message"] == "hi"
        assert events[0].body["timestamp"] == "2026-11-25T12:00:00.123Z"
        assert events[1].body["username"] == "Guest" and events[1].body["isAdmin"] is True
        assert [c.message for c in s.recent_chat] == ["second", "third"]  # bounded history
        assert [c.seq for c in s.take_new_chat()] == [1, 2, 3]
        assert s.take_new_chat() == []
        assert s.chat_count == 3

    @pytest.mark.parametrize("message", ["", "   ", "x" * (MAX_MESSAGE_CHARS + 1)])
    def test_bad_messages_rejected_without_side_effects(self, message: str) -> None:
        s = new_state()
        [r] = apply(s, Chat("bob", message, is_admin=False))
        assert not r.ok and r.error
        assert s.seq == 0 and take_events(s, 0.0) == [] and s.chat_count == 0

    def test_username_too_long(self) -> None:
        [r] = apply(new_state(), Chat("x" * 51, "hi", is_admin=False))
        assert not r.ok and "username" in (r.error or "")


class TestClientIds:
    def test_a_resent_chat_is_stored_once(self) -> None:
        s = new_state()
        first, again = apply(
            s,
            Chat("a", "hello", False, session_id="s1", client_msg_id="c1"),
            Chat("a", "hello", False, session_id="s1", client_msg_id="c1"),
        )
        assert first.seq == again.seq and s.chat_count == 1
        [other] = apply(s, Chat("b", "hello", False, session_id="s2", client_msg_id="c1"))
        assert other.seq != first.seq  # ids are per sender
