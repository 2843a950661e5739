"""The apps' WebSocket protocol: inbound frames and one session per connection."""
