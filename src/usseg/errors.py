"""Errors a user can act on.

Every error usseg raises on purpose is a UssegError whose message names the
file, key or value at fault and says what to do. The workflow shows that
message on its own; anything else is a bug and keeps its traceback.
"""


class UssegError(Exception):
    """A problem with the user's data, config or environment, with a fix in the message."""


class ConfigError(UssegError):
    """config.yaml is invalid."""


class DataError(UssegError):
    """The dataset cannot be used as it is."""


class LeakageError(DataError):
    """A subject or an identical file sits in more than one of train, val and the test sets."""
