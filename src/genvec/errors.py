"""Error classes of genvec.

Every error genvec raises on purpose is a `GenVecError`, so callers can catch one type. Each subclass also
subclasses the matching built-in (`ValueError`, `FileNotFoundError`, ...) so generic handlers keep working.
Messages say what was wrong, the value received, what is accepted, and how to fix it. `check_positive_int` is the
one check of a count or size parameter (a batch size, a number of shards), so every such message reads the same.
"""


class GenVecError(Exception):
    """Base class of every error genvec raises on purpose."""


class ConfigError(GenVecError, ValueError):
    """A configuration value is invalid; the message lists every problem, one per line."""


class InputError(GenVecError, ValueError):
    """An argument or an input file is not what a public function accepts.

    `param` names the parameter that was wrong and `index` the position of the bad item in it (a text of a list),
    when there is one: the server maps them to its error fields without checking the input again.
    """

    def __init__(self, message: str, *, param: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.param, self.index = param, index


class InputTooLongError(InputError):
    """A text is longer than the model reads and the caller asked for `truncate="error"`."""


class CheckpointError(GenVecError, ValueError):
    """A checkpoint is damaged, of an unknown layout, or does not fit the backbone (names, shapes, sizes)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint directory, or a file it must hold, does not exist (the message lists what was found)."""


class TrainingError(GenVecError, RuntimeError):
    """Training cannot start or cannot go on (empty data, mismatched targets, a non-finite loss)."""


class BusyError(GenVecError, RuntimeError):
    """Another process is writing the same artefact (a response file, target store, run directory or cache)."""


def check_positive_int(value: object, name: str) -> None:
    """Refuse anything but an int of at least 1 (a bool is not one) as the parameter `name`.

    Raises:
        InputError: "batch_size must be a positive integer, got 0; pass a whole number of 1 or more."
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        kind = "" if isinstance(value, int) and not isinstance(value, bool) else f" (a {type(value).__name__})"
        raise InputError(f"{name} must be a positive integer, got {value!r}{kind}; pass a whole number of 1 or more.",
                         param=name)
