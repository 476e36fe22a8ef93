"""Errors importers raise for input they cannot read at all."""


class FormatError(Exception):
    """A file is not in the format it was named as; the message says what was expected."""


class NeedsOptionError(FormatError):
    """The input is readable but lacks something only the command line can give (the
    listener of an export that names none); the message names the option."""
