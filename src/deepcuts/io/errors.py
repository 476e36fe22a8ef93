"""Errors importers raise for input they cannot read at all."""


class FormatError(Exception):
    """A file is not in the format it was named as; the message says what was expected."""
