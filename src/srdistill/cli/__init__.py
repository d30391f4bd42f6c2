"""Command-line entry points: the only place configs are instantiated."""
