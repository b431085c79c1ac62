"""PyPCAPKit 1.4.1's exceptions and warnings that a tracing script meets, on the same built-in base classes
(``UnsupportedCall`` is an ``AttributeError``, ``FileExists`` a ``FileExistsError``, ...), so that its
``except`` clauses and warning filters behave the same."""

__all__ = [
    'BaseError', 'UnsupportedCall', 'FormatError', 'FileExists', 'FileNotFound', 'FileError', 'IterableError',
    'CallableError', 'BaseWarning', 'FormatWarning', 'FileWarning', 'EngineWarning', 'ExtractionWarning',
]


class BaseError(Exception):
    """Base of PyPCAPKit's errors (``pcapkit.utilities.exceptions.BaseError``)."""

    def __init__(self, *args, quiet=False, **kwargs):  # pylint: disable=unused-argument
        super().__init__(*args, **kwargs)


class IterableError(BaseError, TypeError):
    """The argument(s) must be *iterable*."""


class CallableError(BaseError, TypeError):
    """The argument(s) must be *callable*."""


class FormatError(BaseError, AttributeError):
    """Unknown format(s)."""


class UnsupportedCall(BaseError, AttributeError):
    """Unsupported function or property call; traceflow also raises it for a PyPCAPKit option it does not do."""


class FileError(BaseError, IOError):
    """[Errno 5] Wrong file format."""


class FileExists(BaseError, FileExistsError):
    """[Errno 17] File already exists."""


class FileNotFound(BaseError, FileNotFoundError):
    """[Errno 2] File not found."""


class BaseWarning(UserWarning):
    """Base of PyPCAPKit's warnings (``pcapkit.utilities.warnings.BaseWarning``)."""


class FormatWarning(BaseWarning, ImportWarning):
    """Warning on unknown format(s)."""


class EngineWarning(BaseWarning, ImportWarning):
    """Unsupported extraction engine."""


class FileWarning(BaseWarning, RuntimeWarning):
    """Warning on file(s)."""


class ExtractionWarning(BaseWarning, RuntimeWarning):
    """Warning on extraction."""
