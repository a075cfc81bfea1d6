"""sorix.save / sorix.load: the data-only format, and pickles only on request."""

import importlib
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import sorix
from sorix import nn, optim
from sorix.errors import GraphFormatError, SorixTypeError, SorixValueError
from sorix.serialization import PickleWarning

TENSOR_MODULE = importlib.import_module("sorix.tensor")  # sorix.tensor is the function


def round_trip(obj, **load_args):
    buffer = io.BytesIO()
    sorix.save(obj, buffer)
    buffer.seek(0)
    return sorix.load(buffer, **load_args)


def test_values_and_containers_round_trip():
    obj = {
        "w": sorix.tensor(np.arange(6.0).reshape(2, 3), dtype="float32", requires_grad=True),
        "i": sorix.tensor([1, 2, 3]),
        "array": np.ones((2, 2), dtype=np.int32),
        "scalar": np.float64(2.5),
        "numbers": [1, 2.5, float("inf"), float("nan"), True, None, "text"],
        "pair": (0.9, 0.999),
        3: {"nested": [np.zeros(0)]},
        "transposed": np.arange(6).reshape(2, 3).T,
    }
    back = round_trip(obj)
    assert list(back) == list(obj)
    assert back["w"].dtype == sorix.float32 and back["w"].requires_grad
    np.testing.assert_array_equal(back["w"].numpy(), obj["w"].numpy())
    assert back["i"].dtype == sorix.int64
    assert back["array"].dtype == np.int32 and back["scalar"] == 2.5
    assert isinstance(back["scalar"], np.float64)
    assert back["numbers"][:3] == [1, 2.5, float("inf")] and np.isnan(back["numbers"][3])
    assert back["numbers"][4:] == [True, None, "text"]
    assert back["pair"] == (0.9, 0.999) and isinstance(back["pair"], tuple)
    assert back[3]["nested"][0].shape == (0,)
    np.testing.assert_array_equal(back["transposed"], obj["transposed"])


def test_a_model_and_its_optimizer_resume_from_a_file(tmp_path):
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype="float64"), nn.BatchNorm1d(4, dtype="float64"))
    opt = optim.Adam(model.parameters(), lr=0.1)
    x = sorix.tensor(np.random.randn(5, 3))
    for _ in range(2):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
    path = tmp_path / "checkpoint.sorix"
    sorix.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 2}, path)
    checkpoint = sorix.load(str(path))
    np.random.seed(1)
    fresh = nn.Sequential(nn.Linear(3, 4, dtype="float64"), nn.BatchNorm1d(4, dtype="float64"))
    fresh_opt = optim.Adam(fresh.parameters(), lr=0.5)
    fresh.load_state_dict(checkpoint["model"])
    fresh_opt.load_state_dict(checkpoint["optim"])
    assert checkpoint["epoch"] == 2 and fresh_opt.param_groups[0]["lr"] == 0.1
    for m, o in ((model, opt), (fresh, fresh_opt)):
        o.zero_grad()
        (m(x) ** 2).mean().backward()
        o.step()
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_the_file_is_json_and_npy_only():
    buffer = io.BytesIO()
    sorix.save({"w": sorix.tensor([1.0])}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        assert archive.namelist() == ["sorix.json", "arrays/0.npy"]
        index = json.loads(archive.read("sorix.json"))
    assert index["format"] == "sorix-data" and index["version"] == 1


def test_what_cannot_be_saved_is_named():
    with pytest.raises(SorixTypeError, match="save its state_dict"):
        round_trip(nn.Linear(2, 2))
    with pytest.raises(SorixTypeError, match="a function"):
        round_trip({"f": lambda: 0})
    with pytest.raises(SorixTypeError, match="not plain data"):
        round_trip(np.array([object()]))
    with pytest.raises(SorixTypeError, match="key of type tuple"):
        round_trip({(1, 2): 3})


def test_pickles_need_the_opt_in(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"lr": 0.1}))
    with pytest.raises(GraphFormatError, match="allow_pickle=True"):
        sorix.load(path)
    with pytest.warns(PickleWarning, match="can run arbitrary code"):
        assert sorix.load(path, allow_pickle=True) == {"lr": 0.1}


def test_damaged_or_foreign_files_are_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sorix.json", json.dumps({"format": "other"}))
    buffer.seek(0)
    with pytest.raises(GraphFormatError, match="not a sorix data file"):
        sorix.load(buffer)
    for root in ({"tensor": 5}, {"what": 1}, {"list": 3}, {"tensor": True}):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("sorix.json", json.dumps({"format": "sorix-data", "version": 1,
                                                       "root": root}))
        buffer.seek(0)
        with pytest.raises(GraphFormatError):
            sorix.load(buffer)
    deep = {"list": []}
    node = deep
    for _ in range(300):
        node["list"].append({"list": []})
        node = node["list"][0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sorix.json", json.dumps({"format": "sorix-data", "version": 1,
                                                   "root": deep}))
    buffer.seek(0)
    with pytest.raises(GraphFormatError, match="nested too deeply"):
        sorix.load(buffer)
    with pytest.raises(SorixValueError, match="nested too deeply"):
        nested = []
        for _ in range(300):
            nested = [nested]
        round_trip(nested)


class _OriginalDevice:
    """Pickles as the original Sorix's `sorix.tensor.Device` does."""

    __module__ = "sorix.tensor"
    __qualname__ = "Device"

    def __init__(self):
        self.type, self.index = "cpu", None


class _OriginalTensor:
    def __init__(self, data, requires_grad):
        self.state = {"data": data, "device": _OriginalDevice(), "requires_grad": requires_grad}


class _OriginalPickler(pickle.Pickler):
    """Writes tensors the way the original Sorix's Tensor.__getstate__ does."""

    def reducer_override(self, obj):
        if isinstance(obj, _OriginalTensor):
            return object.__new__, (TENSOR_MODULE.Tensor,), obj.state
        return NotImplemented


def test_the_original_sorix_pickles_load_as_tensors(monkeypatch):
    monkeypatch.setattr(TENSOR_MODULE, "Device", _OriginalDevice, raising=False)
    buffer = io.BytesIO()
    _OriginalPickler(buffer).dump({"W": _OriginalTensor(np.ones((2, 3), np.float32), True),
                                   "b": _OriginalTensor(np.zeros((1, 3), np.float32), True)})
    monkeypatch.delattr(TENSOR_MODULE, "Device")
    buffer.seek(0)
    with pytest.warns(PickleWarning):
        state = sorix.load(buffer, allow_pickle=True)
    assert type(state["W"]) is sorix.Tensor and state["W"].requires_grad
    assert state["W"].device == "cpu" and state["W"].shape == (2, 3)
    layer = nn.Linear(2, 3)
    layer.load_state_dict(state)
    assert np.all(layer.W.numpy() == 1) and (state["W"] * 2).sum().item() == 12.0
