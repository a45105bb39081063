"""The one exception type voxlift raises for bad input: the CLI prints its message as one line and exits 1."""


class VoxliftError(Exception):
    """A user-facing error. The message names the file or value at fault and says what is wrong."""
