"""Datasets and mini-batch loading: Dataset, TensorDataset, DataLoader.

A dataset is anything with `__len__` and `__getitem__(i)`. DataLoader draws index batches
(shuffled per epoch from its own numpy generator when `shuffle=True`: a `seed` makes the
order of every epoch reproducible without touching global state), picks the samples and joins
them with `collate_fn`. The default collation stacks samples into tensors, column by column
when a sample is a tuple; tensor datasets are sliced in one indexing step instead of item by
item, which is what makes an epoch over 60,000 rows cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sorix.device import to_host
from sorix.dtypes import DTYPES
from sorix.errors import ShapeError, SorixTypeError, SorixValueError, at_user_line
from sorix.tensor import Tensor


class Dataset:
    """Features `X` and optional targets `y` with optional transforms, as the original
    Sorix's Dataset; subclass it and override `__len__` / `__getitem__` for other data."""

    def __init__(self, X: Any = None, y: Any = None, transform: Callable | None = None,  # noqa: N803
                 target_transform: Callable | None = None) -> None:
        if X is not None and y is not None and len(X) != len(y):
            raise ShapeError(at_user_line(
                f"X and y must have the same length, got len(X)={len(X)} and len(y)={len(y)}"))
        self.X, self.y = X, y
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        if self.X is None:
            raise NotImplementedError(f"{type(self).__name__} must define __len__")
        return len(self.X)

    def __getitem__(self, index: Any) -> Any:
        if self.X is None:
            raise NotImplementedError(f"{type(self).__name__} must define __getitem__")
        x = self.X[index]
        if self.transform is not None:
            x = self.transform(x)
        if self.y is None:
            return x
        y = self.y[index]
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def __repr__(self) -> str:
        return (f"Dataset(len={len(self)}, has_labels={self.y is not None}, "
                f"has_transform={self.transform is not None})")


class TensorDataset(Dataset):
    """Tensors (or arrays) of one length, indexed together: item i is (t0[i], t1[i], ...)."""

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise SorixValueError(at_user_line("TensorDataset needs at least one tensor"))
        arrays = []
        for t in tensors:
            array = np.asarray(to_host(t.data)) if isinstance(t, Tensor) else np.asarray(t)
            if array.ndim == 0:
                raise ShapeError(at_user_line("TensorDataset: a 0-d tensor has no rows"))
            arrays.append(array)
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ShapeError(at_user_line(
                f"TensorDataset: all tensors need the same first dimension, got "
                f"{[len(a) for a in arrays]}"))
        super().__init__()
        self.tensors = tuple(arrays)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        return tuple(a[index] for a in self.tensors)

    def __repr__(self) -> str:
        return f"TensorDataset(len={len(self)}, tensors={len(self.tensors)})"


def default_collate(samples: list[Any]) -> Any:
    """Stack a list of samples into tensors: one tensor, or a tuple of them column by column
    when each sample is a tuple or list."""
    if not samples:
        raise SorixValueError(at_user_line("cannot collate an empty batch"))
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(default_collate(list(column)) for column in zip(*samples))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    arrays = [np.asarray(to_host(s.data)) if isinstance(s, Tensor) else np.asarray(s)
              for s in samples]
    try:
        return Tensor(np.stack(arrays))
    except ValueError as error:
        raise ShapeError(at_user_line(f"cannot collate samples of different shapes: {error}")
                         ) from None


def _batch_to_tensors(batch: Any) -> Any:
    """Tensors around the arrays fancy indexing just made (fresh copies: none is needed),
    checked and widened as `sorix.tensor` would."""
    if isinstance(batch, tuple):
        return tuple(_batch_to_tensors(b) for b in batch)
    if batch.dtype.name in DTYPES:
        return Tensor._wrap(batch)
    return Tensor(batch)


class DataLoader:
    """Mini-batches of a dataset.

    batch_size: samples per batch; shuffle: a new order every epoch; seed: the shuffling
    generator's seed (None: unpredictable); drop_last: skip a final short batch;
    collate_fn: joins a list of samples into a batch (default: stacked tensors).

    >>> import numpy as np
    >>> loader = DataLoader(TensorDataset(np.arange(5.0), np.arange(5)), batch_size=2)
    >>> [x.tolist() for x, _ in loader]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """

    def __init__(self, dataset: Any, batch_size: int = 16, shuffle: bool = False,
                 collate_fn: Callable[[list[Any]], Any] | None = None, drop_last: bool = False,
                 seed: int | None = None) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise SorixTypeError(at_user_line(
                f"DataLoader needs a dataset with __len__ and __getitem__, got "
                f"{type(dataset).__name__}"))
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
                batch_size < 1:
            raise SorixValueError(at_user_line(
                f"DataLoader: batch_size must be a positive int, got {batch_size!r}"))
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.generator = np.random.default_rng(seed)

    def _orders(self) -> Iterator[np.ndarray]:
        n = len(self.dataset)
        order = self.generator.permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self) -> Iterator[Any]:
        fast = self.collate_fn is None and isinstance(self.dataset, TensorDataset)
        for indices in self._orders():
            if fast:  # one fancy index per tensor, not one item at a time
                yield _batch_to_tensors(self.dataset[indices])
                continue
            samples = [self.dataset[int(i)] for i in indices]
            yield (self.collate_fn or default_collate)(samples)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
