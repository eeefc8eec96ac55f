"""Errors a user can cause. The command line prints them as one line, without a traceback."""


class GanEnhanceError(Exception):
    """Base class for errors with a message meant for the user (names the file or key, says what to do)."""


class ConfigError(GanEnhanceError, ValueError):
    """A bad configuration key, value or path."""


class AudioFileError(GanEnhanceError, ValueError):
    """An audio file that is missing, empty, truncated or not audio."""


class DataError(GanEnhanceError, ValueError):
    """A dataset that cannot be used (empty, no usable files, bad manifest)."""


class CheckpointError(GanEnhanceError, RuntimeError):
    """A checkpoint or exported model that is missing, corrupt or incompatible."""


class OutOfSpaceError(GanEnhanceError, OSError):
    """The disk (or a quota, or a file-size limit) ran out while writing; the previous file is kept."""
