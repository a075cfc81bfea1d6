"""sorix's exceptions, and how an error message points at the user's own line.

Errors raised while an op is applied name the op, the shapes involved and the first stack frame
outside the sorix package, so a shape mismatch reads like a message about the user's code rather
than a numpy traceback from deep inside.
"""

from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class SorixError(Exception):
    """Base class of the errors sorix raises about its users' input.

    Never raised itself: every error is one of the subclasses below, and each subclass is also
    the standard exception a Python user would catch for it (`TypeError` for a wrong type or a
    wrong call, `ValueError` for a wrong value, `RuntimeError` for autograd or tracing state),
    so `except ValueError:` around sorix code works as it does around numpy code.
    """


class SorixTypeError(SorixError, TypeError):
    """An argument of the wrong type, or a call with the wrong arguments."""


class SorixValueError(SorixError, ValueError):
    """An argument of the right type with a value sorix cannot take."""


class ShapeError(SorixValueError):
    """Operand shapes that an op cannot combine."""


class IndexOutOfRangeError(SorixValueError, IndexError):
    """An index outside what it indexes (an Embedding row, a class number); also an
    IndexError, as the original Sorix raised for it."""


class DTypeError(SorixTypeError):
    """A dtype an op or a tensor cannot take."""


class DomainError(SorixValueError):
    """Values outside an op's domain that numpy would refuse (integers to negative powers)."""


class DeviceError(SorixValueError):
    """An unknown device, or operands on different devices."""


class GraphFormatError(SorixValueError):
    """A serialized graph (JSON or IR text) that is malformed, breaks an IR invariant or
    exceeds a size limit."""


class GradError(SorixError, RuntimeError):
    """A backward pass that cannot run as asked."""


class TraceError(SorixError, RuntimeError):
    """A traced value used where a concrete one is needed, or a trace used wrongly."""


def user_location() -> str:
    """'file.py:12' for the innermost frame outside the sorix package, or '' if there is none.

    A file under the working directory is named relative to it, as the user typed it."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        path = os.path.abspath(filename)
        if not path.startswith(_PACKAGE_DIR) and not filename.startswith("<sorix"):
            return f"{_shown_path(filename, path)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def _shown_path(filename: str, path: str) -> str:
    if filename.startswith("<"):
        return filename  # <stdin>, <string>, a notebook cell
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith(os.pardir) else relative


def at_user_line(message: str) -> str:
    where = user_location()
    return f"{message} (at {where})" if where else message
