"""sorix.optim: update rules by hand, parameter groups, state, schedulers, a training run.

The first Adam and RMSprop steps have closed forms (Adam's first step is lr * sign(g)); later
steps are compared with the update equations written out in float64 here. The training run
is a small classifier on synthetic data that must converge (fixed seeds, float64).
"""

import math

import numpy as np
import pytest

import sorix
from sorix import nn, optim
from sorix.errors import SorixTypeError, SorixValueError
from sorix.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    MultiStepLR,
    ReduceLROnPlateau,
    StepLR,
)
from sorix.utils.data import DataLoader, TensorDataset


def param(values):
    return sorix.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def with_grad(p, g):
    p.grad = sorix.tensor(np.array(g, dtype=np.float64))
    return p


def test_sgd_step_weight_decay_momentum_and_nesterov():
    p = with_grad(param([10.0]), [2.0])
    optim.SGD([p], lr=0.1).step()
    assert p.item() == pytest.approx(9.8)

    p = with_grad(param([10.0]), [2.0])
    optim.SGD([p], lr=0.1, weight_decay=0.5).step()  # g + 0.5 * w = 7
    assert p.item() == pytest.approx(10.0 - 0.7)

    p = with_grad(param([1.0]), [1.0])
    sgd = optim.SGD([p], lr=0.1, momentum=0.9)
    sgd.step()
    sgd.step()  # v = 1, then 0.9 + 1
    assert p.item() == pytest.approx(1.0 - 0.1 - 0.19)
    p = with_grad(param([1.0]), [1.0])
    sgd = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    sgd.step()
    sgd.step()  # g + 0.9 v: 1.9, then 1 + 0.9 * 1.9
    assert p.item() == pytest.approx(1.0 - 0.19 - 0.1 * (1 + 0.9 * 1.9))
    assert optim.SGDMomentum([param([1.0])]).param_groups[0]["momentum"] == 0.9


def test_sgd_on_a_quadratic_shrinks_geometrically():
    x = param([5.0])
    sgd = optim.SGD([x], lr=0.1)
    for _ in range(50):
        sgd.zero_grad()
        (x * x).sum().backward()
        sgd.step()
    assert x.item() == pytest.approx(5.0 * 0.8**50, rel=1e-12)


def test_adam_first_steps_by_hand():
    p = with_grad(param([1.0, -2.0, 3.0]), [0.5, -4.0, 1e-3])
    adam = optim.Adam([p], lr=0.01)
    adam.step()
    # m_hat = g and v_hat = g**2 after one step: the update is lr * g / (|g| + eps)
    g = np.array([0.5, -4.0, 1e-3])
    np.testing.assert_allclose(p.numpy(), [1.0, -2.0, 3.0] - 0.01 * g / (np.abs(g) + 1e-8),
                               rtol=1e-12)
    # three more steps with changing gradients, against the update equations
    w = p.numpy().copy()
    m, v = 0.1 * g, 0.001 * g * g
    for t, scale in zip((2, 3, 4), (1.0, -2.0, 0.5)):
        gt = g * scale
        with_grad(p, gt)
        adam.step()
        m = 0.9 * m + 0.1 * gt
        v = 0.999 * v + 0.001 * gt * gt
        w = w - 0.01 / (1 - 0.9**t) * m / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(p.numpy(), w, rtol=1e-12)
    assert adam.state_dict()["state"][0]["step"] == 4


def test_adamw_decouples_weight_decay_and_adam_couples_it():
    p = with_grad(param([2.0]), [0.5])
    optim.AdamW([p], lr=0.1, weight_decay=0.1).step()
    assert p.item() == pytest.approx(2.0 * (1 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-8))
    p = with_grad(param([2.0]), [0.5])
    optim.Adam([p], lr=0.1, weight_decay=0.1).step()  # g becomes 0.7: the step is still lr
    assert p.item() == pytest.approx(2.0 - 0.1 * 0.7 / (0.7 + 1e-8))
    assert optim.AdamW([param([1.0])]).param_groups[0]["weight_decay"] == 0.01


def test_rmsprop_by_hand_and_the_original_decay_name():
    p = with_grad(param([1.0]), [2.0])
    rms = optim.RMSprop([p], lr=0.01, alpha=0.9)
    rms.step()
    v = 0.1 * 4.0
    assert p.item() == pytest.approx(1.0 - 0.01 * 2.0 / (math.sqrt(v) + 1e-8))
    rms.step()
    v2 = 0.9 * v + 0.1 * 4.0
    assert p.item() == pytest.approx(1.0 - 0.01 * 2.0 / (math.sqrt(v) + 1e-8)
                                     - 0.01 * 2.0 / (math.sqrt(v2) + 1e-8))
    assert optim.RMSprop([param([1.0])], decay=0.5).param_groups[0]["alpha"] == 0.5


def test_param_groups_and_skipped_parameters():
    a, b, c = param([1.0]), param([1.0]), param([1.0])
    sgd = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1)
    sgd.add_param_group({"params": [c], "momentum": 0.5})
    for t in (a, b, c):
        with_grad(t, [1.0])
    sgd.step()
    assert (a.item(), b.item(), c.item()) == pytest.approx((0.9, 0.0, 0.9))
    assert [g["lr"] for g in sgd.param_groups] == [0.1, 1.0, 0.1]
    idle = param([3.0])
    optim.Adam([idle]).step()  # no gradient: left alone
    assert idle.item() == 3.0
    with pytest.raises(SorixValueError, match="more than one parameter group"):
        optim.SGD([{"params": [a]}, {"params": [a]}])


def test_zero_grad_and_closure():
    p = with_grad(param([1.0, 2.0]), [0.5, 0.5])
    sgd = optim.SGD([p], lr=0.1)
    sgd.zero_grad()
    assert np.all(p.grad.numpy() == 0.0)  # zeros, as in the original
    sgd.zero_grad(set_to_none=True)
    assert p.grad is None

    def closure():
        sgd.zero_grad()
        loss = ((p - 3.0) ** 2).sum()
        loss.backward()
        return loss

    with sorix.no_grad():  # the closure runs with grad enabled anyway
        loss = sgd.step(closure)
    assert loss.item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.numpy(), [1.4, 2.2])


def test_state_dict_resumes_exactly():
    def make():
        np.random.seed(0)
        model = nn.Linear(3, 2, dtype="float64")
        return model, optim.Adam(model.parameters(), lr=0.05, betas=(0.8, 0.9))

    x = sorix.tensor(np.random.default_rng(1).standard_normal((6, 3)))

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()

    model, opt = make()
    train(model, opt, 3)
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    assert saved_opt["param_groups"][0]["betas"] == (0.8, 0.9)
    assert saved_opt["param_groups"][0]["params"] == [0, 1]
    resumed, resumed_opt = make()
    resumed.load_state_dict(saved_model)
    resumed_opt.load_state_dict(saved_opt)
    train(model, opt, 2)
    train(resumed, resumed_opt, 2)
    np.testing.assert_array_equal(resumed.W.numpy(), model.W.numpy())
    with pytest.raises(SorixTypeError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_bad_arguments_are_named():
    with pytest.raises(SorixValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(SorixValueError, match="lr must be a number >= 0"):
        optim.Adam([param([1.0])], lr=-1.0)
    with pytest.raises(SorixTypeError, match="optimizes tensors"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(SorixValueError, match="betas"):
        optim.Adam([param([1.0])], betas=(0.9, 1.5))
    with pytest.raises(SorixValueError, match="nesterov"):
        optim.SGD([param([1.0])], nesterov=True)
    with pytest.raises(SorixTypeError, match="iterable"):
        optim.SGD(3)


def test_a_classifier_converges():
    """Two-class data (inside or outside a circle), an MLP, Adam, mini-batches: the loss falls
    by more than five times and the training accuracy passes 95%."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2))
    y = (X[:, 0] ** 2 + X[:, 1] ** 2 > 1.2).astype(np.int64)
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(2, 16, dtype="float64"), nn.Tanh(),
                          nn.Linear(16, 2, dtype="float64"))
    opt = optim.Adam(model.parameters(), lr=0.05)
    sched = StepLR(opt, step_size=10, gamma=0.5)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(X, y), batch_size=50, shuffle=True, seed=0)
    losses = []
    for _ in range(25):
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        losses.append(total / len(X))
        sched.step()
    model.eval()
    with sorix.no_grad():
        accuracy = (model(sorix.tensor(X)).numpy().argmax(axis=1) == y).mean()
    assert losses[-1] < losses[0] / 5
    assert accuracy > 0.95
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * 0.25)


# schedulers -------------------------------------------------------------------------------


def lrs(scheduler, epochs):
    out = []
    for _ in range(epochs):
        out.append(scheduler.get_last_lr()[0])
        scheduler.step()
    return out


def sgd(lr=1.0):
    return optim.SGD([param([1.0])], lr=lr)


def test_epoch_schedulers():
    assert lrs(StepLR(sgd(), step_size=2, gamma=0.5), 5) == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert lrs(MultiStepLR(sgd(), milestones=[1, 3], gamma=0.1), 4) == pytest.approx(
        [1.0, 0.1, 0.1, 0.01])
    assert lrs(ExponentialLR(sgd(), gamma=0.5), 3) == [1.0, 0.5, 0.25]
    cosine = lrs(CosineAnnealingLR(sgd(), T_max=4, eta_min=0.1), 5)
    assert cosine == pytest.approx([0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2
                                    for t in range(5)])
    assert cosine[-1] == pytest.approx(0.1)
    assert lrs(LambdaLR(sgd(2.0), lambda epoch: 1 / (epoch + 1)), 3) == pytest.approx(
        [2.0, 1.0, 2 / 3])
    two = optim.SGD([{"params": [param([1.0])]}, {"params": [param([1.0])], "lr": 0.5}], lr=1.0)
    sched = LambdaLR(two, [lambda e: 1.0, lambda e: 0.5**e])
    sched.step()
    assert sched.get_last_lr() == [1.0, 0.25]


def test_scheduler_state_round_trip():
    opt = sgd()
    sched = StepLR(opt, step_size=3, gamma=0.5)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    assert state["last_epoch"] == 4 and "optimizer" not in state
    opt2 = sgd()
    restored = StepLR(opt2, step_size=3, gamma=0.5)
    restored.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.5)
    assert "_lambdas" not in LambdaLR(sgd(), lambda e: 1.0).state_dict()


def test_reduce_on_plateau():
    opt = sgd(0.1)
    sched = ReduceLROnPlateau(opt, mode="min", patience=3, factor=0.5)
    sched.step(0.5)  # the first value is the best so far
    for _ in range(2):
        sched.step(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    sched.step(0.5)  # the third epoch without improvement: reduce
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    sched.step(0.1)
    assert sched.num_bad_epochs == 0 and sched.best == 0.1
    floor = ReduceLROnPlateau(sgd(0.01), patience=1, factor=0.1, min_lr=0.001)
    for _ in range(5):
        floor.step(1.0)
    assert floor.get_last_lr() == [0.001]
    up = ReduceLROnPlateau(sgd(1.0), mode="max", patience=1, factor=0.5)
    up.step(0.9)
    up.step(0.8)
    assert up.get_last_lr() == [0.5]
    assert "optimizer" not in up.state_dict()


def test_scheduler_arguments_are_checked():
    with pytest.raises(SorixValueError, match="step_size"):
        StepLR(sgd(), step_size=0)
    with pytest.raises(SorixValueError, match="milestones"):
        MultiStepLR(sgd(), milestones=[3, 1])
    with pytest.raises(SorixValueError, match="T_max"):
        CosineAnnealingLR(sgd(), T_max=0)
    with pytest.raises(SorixValueError, match="mode"):
        ReduceLROnPlateau(sgd(), mode="up")
    with pytest.raises(SorixValueError, match="factor"):
        ReduceLROnPlateau(sgd(), factor=1.5)
    with pytest.raises(SorixValueError, match="one per parameter group"):
        LambdaLR(sgd(), [lambda e: 1.0, lambda e: 1.0])
    with pytest.raises(SorixTypeError, match="schedules a sorix optimizer"):
        StepLR(object(), step_size=1)


# the SciPy bridge ---------------------------------------------------------------------------


def test_scipy_bridge_objective_without_scipy():
    x = param([1.0, 2.0])
    bridge = optim.ScipyBridge(x, lambda: ((x - 3.0) ** 2).sum())
    value, grad = bridge.objective(bridge.get_x())
    assert value == 5.0
    np.testing.assert_array_equal(grad, [-4.0, -2.0])
    bridge.set_x(np.array([0.5, 0.25]))
    assert x.tolist() == [0.5, 0.25]
    with pytest.raises(SorixValueError, match="expected 2 values"):
        bridge.set_x(np.zeros(3))
    model = nn.Linear(2, 1)
    assert optim.ScipyBridge(model, lambda: model(sorix.tensor([[1.0, 1.0]])).sum()
                             ).total_size == 3
    with pytest.raises(SorixTypeError):
        optim.ScipyBridge([], lambda: None)


def test_scipy_bridge_compiled_objective_equals_the_eager_one():
    rng = np.random.default_rng(3)
    X, y = sorix.tensor(rng.standard_normal((20, 3))), sorix.tensor(rng.standard_normal((20, 1)))
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype="float64"), nn.Tanh(),
                          nn.Linear(4, 1, dtype="float64"))
    loss = lambda: nn.MSELoss()(model(X), y)  # noqa: E731
    eager = optim.ScipyBridge(model, loss)
    compiled = optim.ScipyBridge(model, loss, compiled=True)
    x = eager.get_x() + 0.1
    value, grad = eager.objective(x)
    compiled_value, compiled_grad = compiled.objective(x)
    assert compiled_value == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(compiled_grad, grad, rtol=1e-10, atol=1e-14)
    with pytest.raises(SorixTypeError, match="needs a Module"):
        optim.ScipyBridge(param([1.0]), lambda: None, compiled=True)


@pytest.mark.parametrize("compiled", [False, True])
def test_scipy_bridge_minimize(compiled):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    model = nn.Linear(3, 1, dtype="float64")
    bridge = optim.ScipyBridge(model, lambda: nn.MSELoss()(model(sorix.tensor(X)),
                                                          sorix.tensor(y)), compiled=compiled)
    result = bridge.minimize(method="L-BFGS-B")
    assert result.success
    np.testing.assert_allclose(model.W.numpy().ravel(), [1.0, -2.0, 0.5], atol=1e-5)
    assert model.intercept_ == pytest.approx(0.3, abs=1e-5)


def test_a_custom_optimizer_in_the_original_style():
    """The original's extension point: subclass Optimizer(params, lr) and update each group's
    flat `_param_buffer` from its `_grad_buffer` in `_perform_step`."""

    class SignSGD(optim.Optimizer):
        def __init__(self, params, lr=0.01):
            super().__init__(params, lr)

        def _perform_step(self):
            for group in self.param_groups:
                group["state"]["calls"] = group["state"].get("calls", 0) + 1
                group["_param_buffer"] -= group["lr"] * group["_xp"].sign(group["_grad_buffer"])

    w, b = param([[1.0, -1.0]]), param([0.5])
    opt = SignSGD([w, b], lr=0.1)
    with_grad(w, [[3.0, -0.2]])
    opt.step()  # b has no gradient: its buffer part is zeros, sign 0
    np.testing.assert_allclose(w.numpy(), [[0.9, -0.9]])
    assert b.item() == 0.5 and opt.param_groups[0]["state"]["calls"] == 1
    assert "_param_buffer" not in opt.param_groups[0]
    assert opt.state_dict()["param_groups"][0]["lr"] == 0.1
