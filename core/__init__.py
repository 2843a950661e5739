"""The stream's pure rules and the wire contract: no Ray, no sockets, no database.

Commands, results, events and poll results as plain values; the stream's state machine; the
projection of events onto a view; money and order rules. Everything above may import it; it
imports only `runtime`.
"""
