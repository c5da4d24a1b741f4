"""Errors that mean the user gave bad input (reported as one line, exit code 2)."""


class UserError(Exception):
    """A mistake in what the user asked for: bad file, bad option, bad field value."""
