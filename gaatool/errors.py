"""One family of errors. The library raises these; only ``gaatool.cli.app`` catches them.

Each message is one line that says where, what is wrong, and what to do.
"""

__all__ = ["GaatoolError", "InputFileError", "CheckpointError", "DownloadError", "ConfigError", "OutputPathError"]


class GaatoolError(Exception):
    """Base class of every error gaatool reports to users (exit code 1)."""


class InputFileError(GaatoolError, ValueError):
    """An input file is missing, unreadable, malformed or does not fit the model."""


class CheckpointError(GaatoolError, ValueError):
    """A checkpoint is damaged, of another task, or of a newer format version."""


class DownloadError(GaatoolError, OSError):
    """A download failed, was interrupted, or did not match its checksum."""


class ConfigError(GaatoolError, ValueError):
    """An option or configuration value is invalid."""


class OutputPathError(GaatoolError, OSError):
    """An output path cannot be written: a folder, inside a file, not writable, or one of the inputs."""
