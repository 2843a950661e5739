"""The stream's rules, one module per concern, each a set of functions of a
`StreamState` (`core.state`) that answer with a `Result` and change the state
only through its fields and `StreamState.emit`. `core.commit` dispatches
commands to them."""
