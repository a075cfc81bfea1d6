"""Session-wide test settings: one temporary native-kernel cache for the whole run.

`SORIX_CACHE_DIR` points at a fresh folder for the session (set before any test runs, so
subprocesses inherit it), which keeps the user's cache untouched and lets tests that compile
the same graph share the kernel instead of compiling it again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

_CACHE = tempfile.mkdtemp(prefix="sorix-test-cache-")
os.environ["SORIX_CACHE_DIR"] = _CACHE


@pytest.fixture(scope="session", autouse=True)
def native_cache_dir() -> Iterator[str]:
    """The session's native-kernel cache folder (removed at the end of the session)."""
    yield _CACHE
    shutil.rmtree(_CACHE, ignore_errors=True)
