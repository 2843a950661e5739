"""The gateway's rules that both the WebSocket and REST use (one implementation each), and outside providers."""
