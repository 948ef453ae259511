"""Error classes of genvec.

Every error genvec raises on purpose is a `GenVecError`, so callers can catch one type. Each subclass also
subclasses the matching built-in (`ValueError`, `FileNotFoundError`, ...) so generic handlers keep working.
Messages say what was wrong, the value received, what is accepted, and how to fix it.
"""


class GenVecError(Exception):
    """Base class of every error genvec raises on purpose."""


class ConfigError(GenVecError, ValueError):
    """A configuration value is invalid; the message lists every problem, one per line."""


class InputError(GenVecError, ValueError):
    """An argument or an input file is not what a public function accepts."""


class CheckpointError(GenVecError, ValueError):
    """A checkpoint is damaged, of an unknown layout, or does not fit the backbone (names, shapes, sizes)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint directory, or a file it must hold, does not exist (the message lists what was found)."""


class TrainingError(GenVecError, RuntimeError):
    """Training cannot start or cannot go on (empty data, mismatched targets, a non-finite loss)."""


class BusyError(GenVecError, RuntimeError):
    """Another process is writing the same artefact (a response file, target store, run directory or cache)."""
