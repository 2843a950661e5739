"""WrenCOS Live: settings, logging and the command line that starts the system."""

__version__ = "0.1.0"
