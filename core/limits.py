"""The limits of one stream: they keep its memory and every frame bounded.

Part of the contract: the gateway checks the same numbers before it sends a
command (REST validation), and the rules refuse anything beyond them.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 500
MAX_USERNAME_CHARS = 50
MAX_PINNED_PRODUCTS = 50
CLIENT_IDS_KEPT = 8192  # recent client message ids remembered per stream, for deduplication
DEFAULT_USERNAME = "Guest"
# Moderation.
MAX_BLOCKED_WORDS = 500
MAX_BLOCKED_WORD_CHARS = 50
MAX_SLOW_MODE_SECONDS = 3600
MAX_MUTED = 10_000  # mutes kept per stream (expired ones are dropped first)
DELETED_SEQS_KEPT = 1024  # recent deletions remembered, to filter history after a restart
SLOW_MODE_SENDERS_KEPT = 50_000
