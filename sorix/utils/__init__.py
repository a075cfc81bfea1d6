"""Utilities with the original Sorix's names: `sorix.utils.data` (datasets and loaders)."""

from sorix.utils import data

__all__ = ["data"]
