"""WebSocket transport: one connection, the server protocol underneath, frames written once for many."""
