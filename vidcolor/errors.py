"""The one exception type the CLI turns into a one-line error message."""


class VidcolorError(Exception):
    """A user-facing failure: bad input, a bad weight file, an unwritable output."""
