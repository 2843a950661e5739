"""Chat moderation in the pure core: deletions, mutes, blocked words, slow mode,
and all of it surviving a checkpoint and a journal replay."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import cast

from core.checkpoint import from_checkpoint, to_checkpoint
from core.command_codec import (
    command_from_doc,
    command_to_doc,
    commit_from_entry,
    commit_to_entry,
)
from core.commands import (
    Chat,
    Command,
    DeleteMessage,
    Mute,
    SetBlockedWords,
    SetSlowMode,
    Unmute,
)
from core.commit import CommitInput, apply, apply_batch, apply_commit, take_events
from core.limits import (
    MAX_BLOCKED_WORD_CHARS,
    MAX_BLOCKED_WORDS,
    MAX_MUTED,
    MAX_SLOW_MODE_SECONDS,
    SLOW_MODE_SENDERS_KEPT,
)
from core.results import Result
from core.state import StreamMeta, StreamState
from core.wire import encode_event
from runtime.clock import iso

T0 = datetime(2026, 11, 25, 12, 0, 0, 987654, tzinfo=UTC)


def new_state() -> StreamState:
    return StreamState(meta=StreamMeta(stream_id="s1", title="t"))


def chat(
    state: StreamState,
    text: str,
    session: str = "s-a",
    user: str | None = None,
    at: datetime = T0,
    admin: bool = False,
    moderator: bool = False,
) -> Result:
    return apply(state, "gw", Chat("ann", text, admin, session, user, moderator=moderator), at)


def test_delete_removes_from_history_emits_an_event_and_is_idempotent() -> None:
    state = new_state()
    first = chat(state, "hello")
    chat(state, "buy crypto at scam.example")
    bad = state.recent_chat[-1].seq
    take_events(state, 0.0)
    result = apply(state, "gw", DeleteMessage(bad), T0)
    assert result.ok and result.seq is not None
    assert [r.seq for r in state.recent_chat] == [first.seq]
    assert [c["seq"] for c in state.snapshot()["chat"]] == [first.seq]
    events = take_events(state, 0.0)
    assert [(e.type, e.body) for e in events] == [("chat_message_deleted", {"messageId": bad})]
    assert state.take_new_deletions() == [bad]
    again = apply(state, "gw", DeleteMessage(bad), T0)
    assert again.ok and again.seq is None and take_events(state, 0.0) == [] and state.take_new_deletions() == []


def test_delete_of_a_message_that_never_was_is_not_found() -> None:
    state = new_state()
    result = apply(state, "gw", DeleteMessage(99), T0)
    assert not result.ok and result.data == {"code": "not_found"}


def test_muted_viewer_is_refused_until_the_mute_ends() -> None:
    state = new_state()
    until = iso(T0 + timedelta(seconds=60))
    assert apply(state, "gw", Mute(until=until, target="u-1"), T0).ok
    assert [(e.type, e.body) for e in take_events(state, 0.0)] == [("user_muted", {"userKey": "u-1", "until": until})]
    refused = chat(state, "let me talk", user="u-1")
    assert not refused.ok and "muted" in (refused.error or "") and refused.data == {"code": "muted", "until": until}
    assert chat(state, "someone else", user="u-2").ok
    assert chat(state, "later", user="u-1", at=T0 + timedelta(seconds=61)).ok  # the mute ended


def test_mute_by_message_mutes_its_sender_and_unmute_lifts_it() -> None:
    state = new_state()
    chat(state, "spam", session="anon-9")
    seq = state.recent_chat[-1].seq
    muted = apply(state, "gw", Mute(until=iso(T0 + timedelta(minutes=5)), message_seq=seq), T0)
    assert muted.ok and muted.data and muted.data["userKey"] == "anon-9"
    assert not chat(state, "more spam", session="anon-9").ok
    assert apply(state, "gw", Unmute("anon-9"), T0).ok
    assert chat(state, "sorry", session="anon-9").ok
    assert apply(state, "gw", Unmute("anon-9"), T0).seq is None  # twice is harmless


def test_mute_needs_a_future_end_and_a_known_message() -> None:
    state = new_state()
    assert not apply(state, "gw", Mute(until=iso(T0 - timedelta(seconds=1)), target="x"), T0).ok
    assert not apply(state, "gw", Mute(until=iso(T0 + timedelta(seconds=1)), message_seq=5), T0).ok
    assert not apply(state, "gw", Mute(until=iso(T0 + timedelta(seconds=1))), T0).ok


def test_blocked_words_refuse_whole_words_in_any_case_but_not_admins_or_moderators() -> None:
    state = new_state()
    assert apply(state, "gw", SetBlockedWords(("Spam", "free money")), T0).ok
    assert [e.type for e in take_events(state, 0.0)] == ["moderation_updated"]
    for text in ("this is SPAM", "get FREE   money".replace("   ", " "), "spam!"):
        result = chat(state, text)
        assert not result.ok and result.data == {"code": "blocked_word"}, text
    assert chat(state, "spammer is a different word").ok
    assert chat(state, "spam", admin=True).ok
    assert chat(state, "spam", moderator=True).ok
    assert state.moderation()["blockedWords"] == ["spam", "free money"]
    assert apply(state, "gw", SetBlockedWords(()), T0).ok
    assert chat(state, "spam").ok


def test_blocked_words_are_bounded() -> None:
    state = new_state()
    assert not apply(state, "gw", SetBlockedWords(("x" * 51,)), T0).ok
    assert not apply(state, "gw", SetBlockedWords(tuple(f"w{i}" for i in range(501))), T0).ok


def test_slow_mode_is_per_sender_and_says_how_long_to_wait() -> None:
    state = new_state()
    assert apply(state, "gw", SetSlowMode(10), T0).ok
    assert state.stream_data()["slowModeSeconds"] == 10
    assert chat(state, "one", session="a").ok
    assert chat(state, "other sender", session="b").ok
    refused = chat(state, "two", session="a", at=T0 + timedelta(seconds=3))
    assert not refused.ok and refused.data == {"code": "slow_mode", "retryAfter": 7}
    assert "retry in 7 s" in (refused.error or "")
    assert chat(state, "admin", session="a", admin=True).ok
    assert chat(state, "three", session="a", at=T0 + timedelta(seconds=10)).ok
    assert apply(state, "gw", SetSlowMode(0), T0).ok
    assert chat(state, "free again", session="a", at=T0 + timedelta(seconds=10, milliseconds=1)).ok
    assert not apply(state, "gw", SetSlowMode(3601), T0).ok


def test_moderation_survives_a_checkpoint_and_deleted_chat_stays_out_of_history() -> None:
    state = new_state()
    chat(state, "keep")
    chat(state, "drop")
    drop = state.recent_chat[-1]
    apply(state, "gw", DeleteMessage(drop.seq), T0)
    apply(state, "gw", Mute(until=iso(T0 + timedelta(hours=1)), target="u-9"), T0)
    apply(state, "gw", SetBlockedWords(("scam",)), T0)
    apply(state, "gw", SetSlowMode(30), T0)
    chat(state, "slow", session="z")
    # The chat store may still hold the deleted message (its mark not yet written): it is filtered.
    back = from_checkpoint(copy.deepcopy(to_checkpoint(state)), [*state.recent_chat, drop])
    assert [r.message for r in back.recent_chat] == ["keep", "slow"]
    assert back.moderation() == state.moderation()
    assert not apply(back, "gw", Chat("x", "hi", False, None, "u-9"), T0).ok
    assert not apply(back, "gw", Chat("x", "a scam", False, "q"), T0).ok
    assert not apply(back, "gw", Chat("x", "again", False, "z"), T0 + timedelta(seconds=5)).ok


def test_moderation_commands_round_trip_and_replay_exactly() -> None:
    commands: list[Command] = [
        DeleteMessage(2),
        Mute(until=iso(T0 + timedelta(seconds=30)), target="s3"),
        Mute(until=iso(T0 + timedelta(seconds=30)), message_seq=1),
        Unmute("s3"),
        SetBlockedWords(("bad", "worse")),
        SetSlowMode(2),
    ]
    for command in commands:
        assert command_from_doc(command_to_doc(command)) == command
    state = new_state()
    checkpoint = copy.deepcopy(to_checkpoint(state))
    commits, entries = [], []
    for i in range(30):
        now = T0 + timedelta(milliseconds=333 * i)
        batch: list[Command] = [Chat("bob", f"m{i} bad" if i % 7 == 0 else f"m{i}", False, f"s{i % 4}")]
        if i == 3:
            batch.append(SetSlowMode(2))
        if i == 5:
            batch += [DeleteMessage(2), SetBlockedWords(("bad",))]
        if i == 8:
            batch.append(Mute(until=iso(now + timedelta(seconds=2)), target="s1"))
        if i == 12:
            batch.append(Mute(until=iso(now + timedelta(seconds=30)), message_seq=1))
        if i == 20:
            batch.append(SetSlowMode(0))
        commits.append(CommitInput(batches=[("gw1", f"b{i}", batch)], now=now, clock=now.timestamp()))
    for commit in commits:
        _, events = apply_commit(state, commit)
        entries.append(
            commit_to_entry(commit, state.epoch, [(e.seq, encode_event("s1", state.epoch, e)) for e in events])
        )
    replayed = from_checkpoint(checkpoint, [])
    for entry in entries:
        _, events = apply_commit(replayed, commit_from_entry(entry))
        assert [[e.seq, encode_event("s1", replayed.epoch, e)] for e in events] == entry["events"]
    assert to_checkpoint(replayed) == to_checkpoint(state)
    published = " ".join(text for entry in entries for _, text in entry["events"])
    for kind in ("chat_message_deleted", "user_muted", "moderation_updated"):
        assert f'"{kind}"' in published


def test_a_mute_ends_at_its_end_time_exactly() -> None:
    state = new_state()
    until = iso(T0 + timedelta(seconds=60))
    apply(state, "gw", Mute(until=until, target="u-1"), T0)
    assert not chat(state, "too early", user="u-1", at=T0 + timedelta(seconds=59, microseconds=999_000)).ok
    assert chat(state, "on time", user="u-1", at=T0 + timedelta(seconds=60)).ok
    assert state.muted == {}  # an ended mute is forgotten when it is next checked


def test_mute_answers_exactly() -> None:
    state = new_state()
    until = iso(T0 + timedelta(seconds=30))
    muted = apply(state, "gw", Mute(until=until, target="u-1"), T0)
    [event] = take_events(state, 0.0)
    assert muted == Result(ok=True, seq=event.seq, data={"userKey": "u-1", "until": until})
    assert apply(state, "gw", Mute(until=until, message_seq=7), T0) == Result(
        ok=False,
        error="message 7 is not in the recent chat: mute by userId or sessionId",
        data={"code": "not_found"},
    )
    assert apply(state, "gw", Mute(until=until), T0) == Result(
        ok=False, error="mute needs a userId, a sessionId or a messageId"
    )
    assert apply(state, "gw", Mute(until=iso(T0), target="u-2"), T0) == Result(
        ok=False, error="a mute must end in the future"
    )
    assert take_events(state, 0.0) == [] and list(state.muted) == ["u-1"]


def test_unmute_answers_exactly_and_says_so_to_viewers() -> None:
    state = new_state()
    apply(state, "gw", Mute(until=iso(T0 + timedelta(seconds=30)), target="u-1"), T0)
    take_events(state, 0.0)
    lifted = apply(state, "gw", Unmute("u-1"), T0)
    [event] = take_events(state, 0.0)
    assert (event.type, event.body) == ("user_unmuted", {"userKey": "u-1"})
    assert lifted == Result(ok=True, seq=event.seq, data={"userKey": "u-1"})


def test_mutes_are_bounded_and_ended_ones_make_room() -> None:
    state = new_state()
    soon = iso(T0 + timedelta(seconds=1))
    later = T0 + timedelta(seconds=1)
    results = apply_batch(state, "gw", "fill", [Mute(until=soon, target=f"v{i}") for i in range(MAX_MUTED)], T0)
    assert all(r.ok for r in results) and len(state.muted) == MAX_MUTED
    full = apply(state, "gw", Mute(until=soon, target="one-more"), T0)
    assert full == Result(ok=False, error=f"at most {MAX_MUTED} viewers can be muted at once")
    assert apply(state, "gw", Mute(until=iso(later + timedelta(seconds=9)), target="v3"), T0).ok  # replaces its end
    # At `later` every mute but v3's has ended (ending exactly now counts): they make room.
    assert apply(state, "gw", Mute(until=iso(later + timedelta(seconds=5)), target="one-more"), later).ok
    assert sorted(state.muted) == ["one-more", "v3"]


def test_blocked_words_answer_exactly_and_count_the_words_for_viewers() -> None:
    state = new_state()
    set_words = apply(state, "gw", SetBlockedWords(("Spam", " scam ", "spam")), T0)
    [event] = take_events(state, 0.0)
    assert (event.type, event.body) == ("moderation_updated", {"slowModeSeconds": 0, "blockedWords": 2})
    assert set_words == Result(ok=True, seq=event.seq, data={"blockedWords": ["spam", "scam"]})
    refused = chat(state, "no spam please")
    assert refused == Result(
        ok=False,
        error="Your message contains a word that is not allowed in this chat",
        data={"code": "blocked_word"},
    )


def test_blocked_words_at_their_limits_and_beyond() -> None:
    state = new_state()
    longest = "x" * MAX_BLOCKED_WORD_CHARS
    assert apply(state, "gw", SetBlockedWords((longest,)), T0).ok
    most = tuple(f"w{i}" for i in range(MAX_BLOCKED_WORDS))
    assert apply(state, "gw", SetBlockedWords(most), T0).ok and len(state.blocked_words) == MAX_BLOCKED_WORDS
    take_events(state, 0.0)
    word_refusal = Result(ok=False, error=f"blocked words are 1 to {MAX_BLOCKED_WORD_CHARS} characters")
    for bad in (longest + "x", "  ", cast(str, 123)):  # a peer's document may hold anything
        assert apply(state, "gw", SetBlockedWords(("fine", bad)), T0) == word_refusal, bad
    too_many = apply(state, "gw", SetBlockedWords((*most, "one-more")), T0)
    assert too_many == Result(ok=False, error=f"at most {MAX_BLOCKED_WORDS} blocked words")
    assert take_events(state, 0.0) == [] and len(state.blocked_words) == MAX_BLOCKED_WORDS


def test_slow_mode_answers_exactly_and_accepts_only_whole_seconds_in_range() -> None:
    state = new_state()
    apply(state, "gw", SetBlockedWords(("a", "b")), T0)
    take_events(state, 0.0)
    result = apply(state, "gw", SetSlowMode(MAX_SLOW_MODE_SECONDS), T0)
    [event] = take_events(state, 0.0)
    assert (event.type, event.body) == (
        "moderation_updated",
        {"slowModeSeconds": MAX_SLOW_MODE_SECONDS, "blockedWords": 2},
    )
    assert result == Result(ok=True, seq=event.seq, data={"slowModeSeconds": MAX_SLOW_MODE_SECONDS})
    refusal = Result(ok=False, error=f"slow mode is 0 to {MAX_SLOW_MODE_SECONDS} seconds")
    for bad in (MAX_SLOW_MODE_SECONDS + 1, -1, cast(int, 2.5), cast(int, True)):  # a peer's document may hold anything
        assert apply(state, "gw", SetSlowMode(bad), T0) == refusal, bad
    assert state.slow_mode == MAX_SLOW_MODE_SECONDS and take_events(state, 0.0) == []


def test_slow_mode_of_one_second_waits_whole_seconds_to_the_millisecond() -> None:
    state = new_state()
    apply(state, "gw", SetSlowMode(1), T0)
    assert chat(state, "one", session="a").ok
    early = chat(state, "two", session="a", at=T0 + timedelta(milliseconds=999))
    assert early.data == {"code": "slow_mode", "retryAfter": 1}
    assert chat(state, "two", session="a", at=T0 + timedelta(seconds=1)).ok


def test_slow_mode_rounds_the_wait_up_to_whole_seconds() -> None:
    state = new_state()
    apply(state, "gw", SetSlowMode(10), T0)
    assert chat(state, "one", session="a").ok
    refused = chat(state, "two", session="a", at=T0 + timedelta(milliseconds=7999))  # 2.001 s to wait
    assert refused == Result(
        ok=False,
        error="Slow mode is on: one message every 10 s; retry in 3 s",
        data={"code": "slow_mode", "retryAfter": 3},
    )


def test_without_slow_mode_no_sender_clock_is_kept() -> None:
    state = new_state()
    assert chat(state, "one", session="a").ok and chat(state, "two", session="a").ok
    assert state.last_chat_ms == {}  # nothing to store, nothing to bound


def test_turning_slow_mode_off_forgets_the_clocks_but_changing_it_keeps_them() -> None:
    state = new_state()
    apply(state, "gw", SetSlowMode(10), T0)
    assert chat(state, "one", session="a").ok
    apply(state, "gw", SetSlowMode(2), T0)
    assert not chat(state, "too soon", session="a", at=T0 + timedelta(seconds=1)).ok  # a's clock is kept
    apply(state, "gw", SetSlowMode(0), T0)
    apply(state, "gw", SetSlowMode(10), T0)
    assert chat(state, "a fresh start", session="a", at=T0 + timedelta(seconds=1)).ok


def test_slow_mode_keeps_the_clocks_of_the_most_recent_senders_only() -> None:
    state = StreamState(meta=StreamMeta(stream_id="s1", title="t"), history_size=1)
    apply(state, "gw", SetSlowMode(10), T0)
    senders = [Chat("x", "hi", False, f"s{i}") for i in range(SLOW_MODE_SENDERS_KEPT)]
    assert all(r.ok for r in apply_batch(state, "gw", "fill", senders, T0))
    take_events(state, 0.0)
    state.take_new_chat()
    assert not chat(state, "again", session="s0").ok  # the oldest sender's clock is still kept
    assert chat(state, "first", session="newcomer").ok  # one sender more: the oldest clock is forgotten
    assert not chat(state, "again", session="newcomer").ok
    assert chat(state, "again", session="s0").ok and len(state.last_chat_ms) == SLOW_MODE_SENDERS_KEPT
