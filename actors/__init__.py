"""Ray actors: one `StreamActor` per live stream, one `StreamRegistry` for the cluster.

The rules live in the pure `stream_state` module; the actors are shells that
load, store and publish around it. All Ray API calls (create, look up, kill)
are in `handles`.
"""
