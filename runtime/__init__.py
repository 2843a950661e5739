"""The bottom layer: settings, structured logs, the clock and the garbage-collection policy.

Nothing here imports any other package of this project; every other layer may import it.
"""

__version__ = "0.1.0"
