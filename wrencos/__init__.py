"""WrenCOS Live's command line: `wrencos run`, `wrencos gateway`, `wrencos status`, `wrencos loadtest`.

The top layer: it starts and inspects the system and may import every other package.
"""

from runtime import __version__

__all__ = ["__version__"]
