"""Ray actors: one `StreamActor` per live stream, one `StreamRegistry` for the cluster.

The rules live in the pure `core` package; the actors are shells that load,
store and publish around them. Where actors run and what they are called is
`placement`; creating, finding and ending them is `stream_lifecycle` and
`registry_lifecycle`; calling them is `StreamClient` and `RegistryClient`
only, by the one policy in `call_policy` (timeouts, retries, errors, metrics).
"""
