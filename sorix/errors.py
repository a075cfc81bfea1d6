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
    """Base class of the errors sorix raises about its users' input."""


class ShapeError(SorixError, ValueError):
    """Operand shapes that an op cannot combine."""


class DTypeError(SorixError, TypeError):
    """A dtype an op or a tensor cannot take."""


class GradError(SorixError, RuntimeError):
    """A backward pass that cannot run as asked."""


class GraphFormatError(SorixError, ValueError):
    """A serialized graph (JSON or IR text) that is malformed or breaks an IR invariant."""


def user_location() -> str:
    """'file.py:12' for the innermost frame outside the sorix package, or '' if there is none."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR) and not frame.f_code.co_filename.startswith("<sorix"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def at_user_line(message: str) -> str:
    where = user_location()
    return f"{message} (at {where})" if where else message
