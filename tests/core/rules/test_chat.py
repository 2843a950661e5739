"""Chat: numbered, bounded history, refused without side effects, resends stored once."""

from __future__ import annotations

from typing import cast

import pytest

from core.commands import Chat, DeleteMessage
from core.commit import take_events
from core.limits import MAX_MESSAGE_CHARS, MAX_USERNAME_CHARS
from core.results import Result
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


class TestChatEdges:
    """The exact refusals, the limits themselves, and who a message is recorded as from."""

    def test_an_empty_or_non_text_message_is_refused_saying_so(self) -> None:
        s = new_state()
        for message in ("  ", cast(str, 42)):  # a peer's document may hold anything
            [r] = apply(s, Chat("bob", message, is_admin=False, session_id="s1"))
            assert r == Result(ok=False, error="chat_message needs a non-empty 'message'"), message
        assert s.seq == 0

    def test_a_message_and_a_username_at_their_limits_are_accepted(self) -> None:
        s = new_state()
        [r] = apply(s, Chat("u" * MAX_USERNAME_CHARS, "m" * MAX_MESSAGE_CHARS, is_admin=False, session_id="s1"))
        assert r.ok and s.recent_chat[-1].username == "u" * MAX_USERNAME_CHARS

    def test_a_message_is_recorded_as_from_its_user_and_session(self) -> None:
        s = new_state()
        apply(s, Chat("bob", "hi", is_admin=False, session_id="s1", user_id="u1"))
        [record] = s.take_new_chat()
        assert (record.user_id, record.session_id) == ("u1", "s1")

    def test_deleting_the_first_message_works_and_a_bad_id_is_refused(self) -> None:
        s = new_state()
        apply(s, Chat("bob", "first", is_admin=False, session_id="s1"))
        [deleted] = apply(s, DeleteMessage(1))
        assert deleted.ok and list(s.recent_chat) == []
        for seq in (0, s.seq + 1, cast(int, "1")):  # a peer's document may hold anything
            [r] = apply(s, DeleteMessage(seq))
            error = f"message {seq} does not exist in this stream"
            assert r == Result(ok=False, error=error, data={"code": "not_found"}), seq
