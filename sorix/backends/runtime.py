"""What a compiled program raises: numpy's errors from inside generated code, as sorix's own.

A program's shape and dtype rules ran when it was traced, so what can still go wrong at run time
depends on values: integers to negative powers, an allocation too large for the machine. numpy
raises a bare ValueError or MemoryError from a generated line; `program_error` turns it into the
error eager code raises for the same op (a `DomainError` for values outside the op's domain),
naming the op, the IR line it came from and the user's line that called the program.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Sequence
from typing import Any

from sorix.errors import DomainError, DTypeError, SorixError, SorixValueError, at_user_line

_IR_COMMENT = re.compile(r"#\s*(%\d+ = (\w+)\(.*)$")


def run_program(program: Any, arrays: Sequence[Any]) -> tuple[Any, ...]:
    """`program.fn(*arrays)`; what numpy raises inside comes back as sorix's error."""
    try:
        return program.fn(*arrays)
    except Exception as error:
        raise program_error(program, error) from None


def program_error(program: Any, error: Exception) -> Exception:
    """The sorix error to raise for `error`, raised while `program` ran."""
    if isinstance(error, SorixError):
        return error
    op, ir_line = _failing_node(program, error)
    where = f" (in the compiled program, at {ir_line})" if ir_line else ""
    name = f"{op}: " if op else ""
    if isinstance(error, MemoryError):
        return SorixValueError(at_user_line(
            f"{name}the program needs more memory than this machine has{where}"))
    cls = DTypeError if isinstance(error, TypeError) else (
        DomainError if isinstance(error, (ValueError, ArithmeticError)) else SorixValueError)
    return cls(at_user_line(f"{name}{type(error).__name__}: {error}{where}"))


def _failing_node(program: Any, error: Exception) -> tuple[str, str]:
    """(op name, IR line) of the generated line the error came from, or ('', '')."""
    filename = getattr(program, "filename", None)
    source = getattr(program, "source", "")
    if not filename or not source:
        return "", ""
    lines = source.splitlines()
    found = ("", "")
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename and frame.lineno and frame.lineno <= len(lines):
            match = _IR_COMMENT.search(lines[frame.lineno - 1])
            if match:
                found = (match.group(2), match.group(1))
    return found
