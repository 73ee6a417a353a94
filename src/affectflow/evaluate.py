"""Placeholder: filled in by its issue."""


def add_commands(subparsers):
    """Register this area's subcommands (none yet)."""
