"""The stream's pure rules and the wire contract: no Ray, no sockets, no database.

The wire contract: `commands` (the one list of command types), `results`, `events`, `limits`,
`poll`, `live_set`, and `wire` (events as the text clients receive); `command_codec` (commands
and commits as journal documents, derived from `commands`).

The stream: `state` (one small state object, its fields declared once with how each is stored),
`rules/` (viewers, likes, chat, moderation, pins, flash sales, client ids: functions of the
state), `commit` (routes commands to the rules; batches, coalescing, the end), `checkpoint`
(derived from the state's declaration through `stored`), `stream_view` (the one projection of
events onto what a stream shows, run by the state and by every gateway), `event_log`.

Also money and order rules, and the spare plan. Everything above may import it; it imports
only `runtime`.
"""
