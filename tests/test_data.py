"""sorix.utils.data: Dataset, TensorDataset, DataLoader (batching, seeded shuffling,
drop_last, collation)."""

import numpy as np
import pytest

import sorix
from sorix.errors import ShapeError, SorixTypeError, SorixValueError
from sorix.utils.data import DataLoader, Dataset, TensorDataset, default_collate


def test_dataset_items_transforms_and_repr():
    X = np.arange(10.0).reshape(5, 2)
    y = np.arange(5)
    ds = Dataset(X, y, transform=lambda x: x * 2, target_transform=lambda t: t + 100)
    assert len(ds) == 5
    x, t = ds[1]
    assert x.tolist() == [4.0, 6.0] and t == 101
    assert Dataset(X)[0].tolist() == [0.0, 1.0]
    assert repr(ds) == "Dataset(len=5, has_labels=True, has_transform=True)"
    with pytest.raises(ShapeError, match="same length"):
        Dataset(X, y[:3])

    class Squares(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.array([float(i)]), i * i

    batches = list(DataLoader(Squares(), batch_size=3))
    assert batches[0][0].shape == (3, 1) and batches[0][1].tolist() == [0, 1, 4]
    assert batches[1][1].tolist() == [9]


def test_tensor_dataset():
    X = sorix.tensor(np.ones((4, 3)))
    ds = TensorDataset(X, np.arange(4))
    assert len(ds) == 4 and ds[2][1] == 2 and ds[2][0].shape == (3,)
    assert repr(ds) == "TensorDataset(len=4, tensors=2)"
    with pytest.raises(ShapeError, match="same first dimension"):
        TensorDataset(np.ones((4, 2)), np.ones(3))
    with pytest.raises(SorixValueError, match="at least one"):
        TensorDataset()


def test_loader_batches_in_order_with_and_without_drop_last():
    ds = TensorDataset(np.arange(10.0), np.arange(10))
    loader = DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(x) for x, _ in batches] == [4, 4, 2]
    assert all(isinstance(x, sorix.Tensor) for x, _ in batches)
    assert np.concatenate([x.numpy() for x, _ in batches]).tolist() == list(range(10))
    assert batches[0][1].dtype == sorix.int64
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(x) for x, _ in dropped] == [4, 4]


def test_shuffling_is_seeded_and_new_each_epoch():
    ds = TensorDataset(np.arange(20.0))
    first = DataLoader(ds, batch_size=5, shuffle=True, seed=7)
    again = DataLoader(ds, batch_size=5, shuffle=True, seed=7)

    def epoch(loader):
        return np.concatenate([b[0].numpy() for b in loader]).tolist()

    e1, e2 = epoch(first), epoch(first)
    assert sorted(e1) == list(range(20)) and e1 != list(range(20))
    assert e1 != e2  # a new order every epoch
    assert [epoch(again), epoch(again)] == [e1, e2]  # and the same sequence from the seed


def test_collate_functions():
    ds = Dataset([[1, 2], [3, 4], [5, 6]])
    assert DataLoader(ds, batch_size=2, collate_fn=lambda s: len(s)).__iter__().__next__() == 2
    assert default_collate([np.array([1.0]), np.array([2.0])]).shape == (2, 1)
    out = default_collate([{"a": 1.0, "b": [1, 2]}, {"a": 2.0, "b": [3, 4]}])
    assert out["a"].tolist() == [1.0, 2.0] and out["b"][1].tolist() == [2, 4]
    with pytest.raises(ShapeError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])


def test_loader_arguments_are_checked():
    with pytest.raises(SorixValueError, match="batch_size"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)
    with pytest.raises(SorixTypeError, match="__len__ and __getitem__"):
        DataLoader(42)
