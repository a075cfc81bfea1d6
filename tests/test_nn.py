"""sorix.nn: modules and containers, layers, losses and initializers.

Values are checked against numpy formulas written out here, gradients against central finite
differences of the eager loss (float64), and the module protocol (repr, parameters, state)
against the original Sorix's behaviour.
"""

import numpy as np
import pytest

import sorix
from sorix import nn
from sorix.errors import IndexOutOfRangeError, ShapeError, SorixTypeError, SorixValueError


def numeric_grad(loss_fn, tensor, eps=1e-6):
    """Central differences of loss_fn() with respect to each element of `tensor`."""
    grad = np.zeros(tensor.shape)
    data = tensor.data
    with sorix.no_grad():
        for i in np.ndindex(*tensor.shape):
            old = data[i]
            data[i] = old + eps
            up = loss_fn().item()
            data[i] = old - eps
            down = loss_fn().item()
            data[i] = old
            grad[i] = (up - down) / (2 * eps)
    return grad


def analytic_grad(loss_fn, tensor):
    tensor.grad = None
    loss_fn().backward()
    return tensor.grad.numpy()


def check_grads(loss_fn, *tensors, tol=1e-6):
    for t in tensors:
        np.testing.assert_allclose(analytic_grad(loss_fn, t), numeric_grad(loss_fn, t),
                                   rtol=tol, atol=tol)


# the module protocol -----------------------------------------------------------------------


class Sub(nn.Module):
    def forward(self, x):
        return x

    def extra_repr(self):
        return "info=test"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.sub = Sub()
        self.fc1 = nn.Linear(3, 4, dtype="float64")
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(4, 2, dtype="float64")
        self.scale = sorix.tensor([2.0], requires_grad=True)
        self.blocks = [nn.Linear(2, 2, dtype="float64")]
        self.named = {"bn": nn.BatchNorm1d(2, dtype="float64")}

    def forward(self, x):
        x = self.fc2(self.act(self.fc1(x))) * self.scale
        return self.named["bn"](self.blocks[0](x))


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="You must implement forward"):
        nn.Module()(sorix.tensor([1.0]))


def test_repr_matches_the_original():
    assert repr(nn.Module()) == "Module()"
    net = Net()
    text = repr(net)
    assert text.startswith("Net(\n  (sub): Sub(info=test)\n  (fc1): Linear(in_features=3, "
                           "out_features=4, bias=True)\n")
    assert str(net) == text

    class MultiLine(nn.Module):
        def extra_repr(self):
            return "line1\nline2"

    assert repr(MultiLine()) == "MultiLine(\n  line1\n  line2\n)"
    seq = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.Tanh()))
    assert repr(seq) == ("Sequential(\n  (0): Linear(in_features=1, out_features=1, bias=True)\n"
                         "  (1): Sequential(\n    (0): Tanh()\n  )\n)")
    assert repr(nn.ModuleList([nn.ReLU()])) == "ModuleList(\n  (0): ReLU()\n)"
    assert repr(nn.BatchNorm1d(3)) == "BatchNorm1d(num_features=3, eps=1e-05, momentum=0.1)"
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2)"
    assert repr(nn.LeakyReLU(0.1)) == "LeakyReLU(negative_slope=0.1)"
    assert repr(nn.Embedding(5, 2)) == "Embedding(num_embeddings=5, embedding_dim=2)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"


def test_parameters_names_and_children():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.W", "fc1.b", "fc2.W", "fc2.b", "scale", "blocks.0.W", "blocks.0.b",
                     "named.bn.gamma", "named.bn.beta"]
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert [type(c).__name__ for c in net.children()] == [
        "Sub", "Linear", "ReLU", "Linear", "Linear", "BatchNorm1d"]
    assert [n for n, _ in net.named_buffers()] == ["named.bn.running_mean",
                                                    "named.bn.running_var"]
    assert list(net.state_dict()) == names[:7] + ["named.bn.gamma", "named.bn.beta",
                                                  "named.bn.running_mean",
                                                  "named.bn.running_var"]
    assert len(list(net.modules())) == 7  # itself and its six children


def test_a_shared_parameter_is_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(seq.parameters()) == 2


def test_module_without_super_init_still_works():
    class Lazy(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 1)

        def forward(self, x):
            return self.fc(x)

    m = Lazy()
    assert m.training and len(m.parameters()) == 2


def test_train_and_eval_reach_lists_and_dicts():
    net = Net()
    assert net.eval() is net
    assert not net.training and not net.sub.training
    assert not net.blocks[0].training and not net.named["bn"].training
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_round_trip_in_place():
    a, b = Net(), Net()
    kept = b.fc1.W
    b.load_state_dict(a.state_dict())
    assert b.fc1.W is kept  # written in place: an optimizer holding it stays valid
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=name)
    state = a.state_dict()
    state["extra"] = sorix.tensor([5.0])
    b.load_state_dict(state)  # unknown names are ignored, as in the original
    with pytest.raises(SorixValueError, match="unexpected keys \\['extra'\\]"):
        b.load_state_dict(state, strict=True)
    with pytest.raises(ShapeError, match="fc1.W"):
        b.load_state_dict({"fc1.W": np.zeros((2, 2))})
    with pytest.raises(SorixTypeError, match="holds a str"):
        b.load_state_dict({"fc1.W": "weights"})
    b.load_state_dict({"scale": [3.0]})
    assert b.scale.item() == 3.0 and b.scale.requires_grad


def test_to_cpu_keeps_tensors_and_zero_grad():
    net = Net()
    w = net.fc1.W
    assert net.to("cpu") is net and net.fc1.W is w
    assert net.device == "cpu" and net.blocks[0].device == "cpu"
    net(sorix.tensor(np.random.randn(4, 3))).sum().backward()
    assert w.grad is not None
    net.zero_grad()  # zeros, as in the original
    assert np.all(w.grad.numpy() == 0)
    net.zero_grad(set_to_none=True)
    assert w.grad is None


def test_sequential_and_module_list_indexing():
    s = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    assert s["0"] is s[0] and s[-1] is s[2]
    assert isinstance(s[0:2], nn.Sequential) and len(s[0:2]) == 2
    assert [type(m).__name__ for m in s] == ["Linear", "ReLU", "Linear"]
    named = nn.Sequential({"enc": nn.Linear(2, 2), "act": nn.Tanh()})
    assert [n for n, _ in named.named_parameters()] == ["enc.W", "enc.b"]
    assert named.enc is named["enc"]
    with pytest.raises(AttributeError):
        _ = named.missing
    assert s(sorix.tensor([[1.0, 2.0]])).shape == (1, 1)
    with pytest.raises(SorixTypeError, match="not an nn.Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)

    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    assert len(layers) == 4 and len(layers.parameters()) == 8
    assert isinstance(layers[1:], nn.ModuleList)
    assert list(layers.state_dict())[:2] == ["0.W", "0.b"]
    with pytest.raises(SorixTypeError):
        layers.append("not a module")

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = layers

    assert [n for n, _ in Holder().named_parameters()][-1] == "layers.3.b"


# layers -----------------------------------------------------------------------------------


def test_linear_layout_init_and_gradients():
    np.random.seed(0)
    lin = nn.Linear(300, 200)
    assert lin.W.shape == (300, 200) and lin.b.shape == (1, 200)
    assert lin.W.dtype == sorix.float32 and lin.W.requires_grad
    assert abs(lin.W.numpy().std() - np.sqrt(2 / 300)) < 2e-3
    assert abs(nn.Linear(300, 200, init="xavier").W.numpy().std() - np.sqrt(2 / 500)) < 2e-3
    assert nn.Linear(3, 2, bias=False).b is None
    assert len(nn.Linear(3, 2, bias=False).parameters()) == 1
    with pytest.raises(SorixValueError, match="Invalid initialization method"):
        nn.Linear(2, 2, init="bogus")
    with pytest.raises(SorixValueError, match="features must be >= 1"):
        nn.Linear(0, 2)

    lin = nn.Linear(3, 2, dtype="float64")
    x = sorix.tensor(np.random.randn(5, 3))
    np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.W.numpy() + lin.b.numpy())
    assert lin.coef_.shape == (6,) and lin.intercept_.shape == (2,)
    assert isinstance(nn.Linear(3, 1).intercept_, float)
    check_grads(lambda: (lin(x) ** 2).sum(), lin.W, lin.b)


def test_activations_values_and_gradients():
    x = sorix.tensor([[-2.0, -0.5, 0.5, 3.0]], requires_grad=True)
    a = x.numpy()
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), np.maximum(a, 0))
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x).numpy(), np.where(a > 0, a, 0.1 * a))
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-a)))
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(a))
    e = np.exp(a - a.max())
    np.testing.assert_allclose(nn.Softmax()(x).numpy(), e / e.sum())
    w = sorix.tensor([[1.0, -2.0, 3.0, 0.5]])
    for layer in (nn.ReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh(), nn.Softmax(dim=1)):
        check_grads(lambda layer=layer: (layer(x) * w).sum(), x)
    assert nn.Sigmoid()(sorix.tensor([-800.0, 800.0])).tolist() == [0.0, 1.0]


def test_batchnorm_running_statistics_by_hand():
    np.random.seed(1)
    bn = nn.BatchNorm1d(3, momentum=0.1, dtype="float64")
    x = np.random.randn(8, 3) * 2 + 1
    out = bn(sorix.tensor(x)).numpy()
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean[None])
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * x.var(0, ddof=1)[None])
    x2 = np.random.randn(8, 3)
    bn(sorix.tensor(x2))
    np.testing.assert_allclose(bn.running_mean.numpy(),
                               0.9 * 0.1 * mean[None] + 0.1 * x2.mean(0)[None])
    bn.eval()
    before = bn.running_mean.numpy().copy()
    out = bn(sorix.tensor(x)).numpy()
    np.testing.assert_allclose(out, (x - bn.running_mean.numpy())
                               / np.sqrt(bn.running_var.numpy() + 1e-5))
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)  # eval never updates
    with pytest.raises(SorixValueError, match="expects input of shape"):
        bn(sorix.tensor(np.ones((4, 2))))
    bn.train()
    one = bn(sorix.tensor(np.full((1, 3), 2.0)))  # one sample: normalized to 0, as the original
    np.testing.assert_allclose(one.numpy(), 0.0)


def test_batchnorm_gradients_by_finite_differences():
    np.random.seed(2)
    bn = nn.BatchNorm1d(3, dtype="float64")
    with sorix.no_grad():
        bn.gamma.data[...] = [[1.5, -0.5, 2.0]]
        bn.beta.data[...] = [[0.1, 0.2, 0.3]]
    x = sorix.tensor(np.random.randn(6, 3), requires_grad=True)
    w = sorix.tensor(np.random.randn(6, 3))
    check_grads(lambda: (bn(x) * w).sum(), x, bn.gamma, bn.beta, tol=1e-5)
    bn.eval()
    check_grads(lambda: (bn(x) * w).sum(), x, bn.gamma, tol=1e-5)


def test_dropout():
    x = sorix.tensor(np.ones((200, 50)))
    drop = nn.Dropout(0.3)
    np.random.seed(3)
    out = drop(x).numpy()
    assert abs((out == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(out[out != 0], 1 / 0.7)
    np.random.seed(3)
    np.testing.assert_array_equal(drop(x).numpy(), out)  # reproducible from numpy's seed
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert np.all(nn.Dropout(1.0)(x).numpy() == 0)
    with pytest.raises(SorixValueError, match="p must be in"):
        nn.Dropout(1.5)


def test_embedding_lookup_and_scattered_gradient():
    np.random.seed(4)
    emb = nn.Embedding(6, 3, dtype="float64")
    idx = np.array([[1, 5, 1], [0, 1, 2]])
    out = emb(sorix.tensor(idx))
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy(), emb.W.numpy()[idx])
    bound = np.sqrt(1 / 6)
    assert np.all(np.abs(emb.W.numpy()) <= bound)
    out.sum().backward()
    counts = np.bincount(idx.ravel(), minlength=6)[:, None] * np.ones((1, 3))
    np.testing.assert_array_equal(emb.W.grad.numpy(), counts)  # row 1 used three times
    opt = sorix.optim.SGD(emb.parameters(), lr=0.1)
    losses = []
    for _ in range(3):  # later steps index a table the optimizer has changed in place
        opt.zero_grad()
        loss = (emb(idx) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > losses[1] > losses[2]
    with pytest.raises(IndexOutOfRangeError, match=r"in \[0, 6\), got values in \[-1, 2\]"):
        emb(np.array([-1, 2]))
    with pytest.raises(IndexError):  # as the original raised
        emb(np.array([6]))
    with pytest.raises(SorixValueError, match="num_embeddings must be >= 1"):
        nn.Embedding(0, 3)


# losses -----------------------------------------------------------------------------------


def test_mse_loss():
    p = sorix.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    t = sorix.tensor([[0.0, 2.0], [5.0, 4.0]])
    assert nn.MSELoss()(p, t).item() == pytest.approx(5 / 4)
    assert nn.MSELoss(reduction="sum")(p, t).item() == pytest.approx(5.0)
    assert nn.MSELoss(reduction="none")(p, t).shape == (2, 2)
    nn.MSELoss()(p, t).backward()
    np.testing.assert_allclose(p.grad.numpy(), 2 * (p.numpy() - t.numpy()) / 4)
    with pytest.raises(ShapeError, match="differ"):
        nn.MSELoss()(p, sorix.tensor([1.0, 2.0]))
    with pytest.raises(SorixValueError, match="reduction must be"):
        nn.MSELoss(reduction="avg")


def test_bce_with_logits_is_stable_and_right():
    x = sorix.tensor([[0.5, -1.0], [40.0, -40.0]], requires_grad=True)
    y = sorix.tensor([[1.0, 0.0], [0.0, 1.0]])
    a, t = x.numpy(), y.numpy()
    expected = np.mean(np.maximum(a, 0) - a * t + np.log1p(np.exp(-np.abs(a))))
    loss = nn.BCEWithLogitsLoss()(x, y)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), (1 / (1 + np.exp(-a)) - t) / 4, atol=1e-15)
    weighted = nn.BCEWithLogitsLoss(weight=sorix.tensor([2.0, 0.0]), reduction="sum")(x, y)
    assert weighted.item() == pytest.approx(2 * (np.maximum(a, 0) - a * t
                                                 + np.log1p(np.exp(-np.abs(a))))[:, 0].sum())


def test_cross_entropy_indices_one_hot_and_weights():
    np.random.seed(5)
    logits = sorix.tensor(np.random.randn(5, 3), requires_grad=True)
    labels = np.array([0, 2, 1, 2, 2])
    z = logits.numpy()
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    nll = -logp[np.arange(5), labels]
    loss = nn.CrossEntropyLoss()(logits, labels)
    assert loss.item() == pytest.approx(nll.mean(), rel=1e-12)
    one_hot = np.eye(3)[labels]
    assert nn.CrossEntropyLoss(one_hot=True)(logits, one_hot).item() == pytest.approx(
        nll.mean(), rel=1e-12)
    assert nn.CrossEntropyLoss()(logits, one_hot).item() == pytest.approx(nll.mean(), rel=1e-12)
    assert nn.CrossEntropyLoss()(logits, sorix.tensor(labels[:, None])).item() == \
        pytest.approx(nll.mean(), rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(logits.grad.numpy(), (np.exp(logp) - one_hot) / 5, atol=1e-15)

    w = np.array([1.0, 2.0, 0.5])
    weighted = nn.CrossEntropyLoss(weight=sorix.tensor(w))
    expected = (w[labels] * nll).sum() / w[labels].sum()  # PyTorch's weighted mean
    assert weighted(logits, labels).item() == pytest.approx(expected, rel=1e-12)
    assert nn.CrossEntropyLoss(weight=w, one_hot=True)(logits, one_hot).item() == \
        pytest.approx(expected, rel=1e-12)
    assert nn.CrossEntropyLoss(weight=w, reduction="sum")(logits, labels).item() == \
        pytest.approx((w[labels] * nll).sum(), rel=1e-12)
    check_grads(lambda: weighted(logits, labels), logits)

    with pytest.raises(IndexOutOfRangeError, match=r"in \[0, 3\)"):
        nn.CrossEntropyLoss()(logits, np.array([0, 1, 2, 3, 0]))
    with pytest.raises(ShapeError, match="class-index targets"):
        nn.CrossEntropyLoss()(logits, np.array([0, 1]))
    with pytest.raises(ShapeError, match="one entry per class"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0])(logits, labels)
    with pytest.raises(ShapeError, match=r"\(N, C\)"):
        nn.CrossEntropyLoss()(sorix.tensor([1.0, 2.0]), np.array([0]))


# initializers ------------------------------------------------------------------------------


def test_init_functions_fill_in_place():
    np.random.seed(6)
    t = sorix.tensor(np.zeros((400, 300)), dtype="float32", requires_grad=True)
    assert nn.init.xavier_uniform_(t) is t and t.dtype == sorix.float32
    bound = np.sqrt(6 / 700)
    assert np.abs(t.numpy()).max() <= bound and np.abs(t.numpy()).max() > 0.95 * bound
    nn.init.kaiming_normal_(t, nonlinearity="relu")
    assert t.numpy().std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")
    assert np.abs(t.numpy()).max() <= np.sqrt(3) * np.sqrt(2 / 300)
    nn.init.xavier_normal_(t, gain=2.0)
    assert t.numpy().std() == pytest.approx(2 * np.sqrt(2 / 700), rel=0.02)
    nn.init.normal_(t, 1.0, 0.5)
    assert t.numpy().mean() == pytest.approx(1.0, abs=0.01)
    nn.init.uniform_(t, -1, 2)
    assert t.numpy().min() >= -1 and t.numpy().max() <= 2
    nn.init.constant_(t, 0.25)
    assert np.all(t.numpy() == 0.25)
    assert np.all(nn.init.zeros_(t).numpy() == 0) and np.all(nn.init.ones_(t).numpy() == 1)
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(np.sqrt(2 / 1.04))
    with pytest.raises(ShapeError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(sorix.tensor([1.0, 2.0]))
    with pytest.raises(SorixValueError, match="fan_in"):
        nn.init.kaiming_normal_(t, mode="fan_middle")
    with pytest.raises(SorixTypeError):
        nn.init.zeros_(np.zeros(3))


def test_a_gradient_penalty_trains_through_create_graph():
    """The original's fourth basics page: a loss made of d(model)/dx (create_graph=True),
    minimized over the weights by Adam, step after step."""
    np.random.seed(8)
    model = nn.Sequential(nn.Linear(1, 16, dtype="float64"), nn.Tanh(),
                          nn.Linear(16, 1, dtype="float64"))
    opt = sorix.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        x = sorix.tensor(np.random.uniform(-1, 1, (10, 1)), requires_grad=True)
        u = model(x)
        du_dx = sorix.grad(u, x, grad_outputs=sorix.ones_like(u), create_graph=True)[0]
        loss = (du_dx**2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_layers_trace_and_compile():
    """Layers are plain tensor ops, so sorix.jit compiles a model's forward unchanged."""
    np.random.seed(7)
    model = nn.Sequential(nn.Linear(4, 8, dtype="float64"), nn.Tanh(),
                          nn.Linear(8, 3, dtype="float64"), nn.Softmax())
    x = np.random.randn(5, 4)
    compiled = sorix.jit(lambda a: model(a))
    np.testing.assert_allclose(compiled(sorix.tensor(x)).numpy(), model(sorix.tensor(x)).numpy(),
                               rtol=1e-12)
