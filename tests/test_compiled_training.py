"""sorix.optim.compile_step: a compiled training step gives the eager loop's numbers.

Same seeds, float64: the losses, parameters, BatchNorm statistics, optimizer state and Dropout
masks of a few compiled steps equal the eager ones to rounding, for each optimizer.
"""

import numpy as np
import pytest

import sorix
from sorix import nn, optim
from sorix.errors import SorixTypeError, SorixValueError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 4))
Y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def build(make_optimizer, dropout=0.2):
    # BatchNorm after the ReLU: right before it, the first bias would have a gradient that is
    # zero but for rounding, which Adam and RMSprop scale up to full steps of either sign
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 8, dtype="float64"), nn.ReLU(),
                          nn.BatchNorm1d(8, dtype="float64"), nn.Dropout(dropout),
                          nn.Linear(8, 3, dtype="float64"))
    return model, make_optimizer(model.parameters())


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.01),
    "momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compiled_steps_equal_eager_steps(name):
    criterion = nn.CrossEntropyLoss()
    eager_model, eager_opt = build(OPTIMIZERS[name])
    compiled_model, compiled_opt = build(OPTIMIZERS[name])
    np.random.seed(1)
    eager = []
    for _ in range(4):
        eager_opt.zero_grad()
        loss = criterion(eager_model(sorix.tensor(X)), sorix.tensor(Y))
        loss.backward()
        eager_opt.step()
        eager.append(loss.item())
    np.random.seed(1)
    step = optim.compile_step(lambda x, y: criterion(compiled_model(x), y), compiled_model,
                              compiled_opt)
    compiled = [step(sorix.tensor(X), sorix.tensor(Y)).item() for _ in range(4)]
    np.testing.assert_allclose(compiled, eager, rtol=1e-12)
    assert eager[-1] < eager[0]
    for (key, a), (_, b) in zip(eager_model.state_dict().items(),
                                compiled_model.state_dict().items()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-13, err_msg=key)
    eager_state = eager_opt.state_dict()["state"]
    compiled_state = compiled_opt.state_dict()["state"]
    for number, entries in eager_state.items():
        for key, value in entries.items():
            np.testing.assert_allclose(compiled_state[number][key], value, rtol=1e-10,
                                       atol=1e-13)


def test_one_program_serves_every_step_and_the_schedule():
    criterion = nn.MSELoss()
    np.random.seed(0)
    model = nn.Linear(4, 1, dtype="float64")
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    target = sorix.tensor(X @ np.array([[1.0], [2.0], [0.0], [-1.0]]))
    step = optim.compile_step(lambda x, t: criterion(model(x), t), model, opt)
    before = model.W.numpy().copy()
    grad = 2 * X.T @ (X @ before + model.b.numpy() - target.numpy()) / len(X)
    step(X, target)
    np.testing.assert_allclose(model.W.numpy(), before - 0.1 * grad, rtol=1e-12)
    sched.step()  # a new learning rate is an input of the same program
    w = model.W.numpy().copy()
    grad = 2 * X.T @ (X @ w + model.b.numpy() - target.numpy()) / len(X)
    step(X, target)
    np.testing.assert_allclose(model.W.numpy(), w - 0.05 * grad, rtol=1e-12)
    assert len(step._programs) == 1
    model.eval()  # another mode is another program
    step(X, target)
    assert len(step._programs) == 2


def test_compiled_training_converges_in_float32():
    np.random.seed(3)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=0.05)
    criterion = nn.CrossEntropyLoss()
    step = optim.compile_step(lambda x, y: criterion(model(x), y), model, opt)
    xs = sorix.tensor(X, dtype="float32")
    losses = [step(xs, Y).item() for _ in range(60)]
    assert model[0].W.dtype == sorix.float32
    assert losses[-1] < losses[0] / 4


def test_a_plain_jit_of_a_training_model_leaves_no_trace_for_compile_step():
    model, opt = build(OPTIMIZERS["sgd"], dropout=0.0)
    before = model[2].running_mean.numpy().copy()
    sorix.jit(lambda x: model(x).sum())(sorix.tensor(X))  # BatchNorm traced in training mode
    np.testing.assert_array_equal(model[2].running_mean.numpy(), before)  # left as it was
    step = optim.compile_step(lambda x, y: nn.CrossEntropyLoss()(model(x), y), model, opt)
    step(X, Y)
    assert not np.array_equal(model[2].running_mean.numpy(), before)


def test_a_traced_dropout_outside_compile_step_says_what_to_do():
    model = nn.Sequential(nn.Linear(4, 4, dtype="float64"), nn.Dropout(0.5))
    with pytest.raises(SorixValueError, match="compile_step"):
        sorix.jit(lambda x: model(x))(sorix.tensor(X))
    model.eval()
    sorix.jit(lambda x: model(x))(sorix.tensor(X))


def test_bad_arguments():
    model, opt = build(OPTIMIZERS["sgd"])
    with pytest.raises(SorixTypeError, match="nn.Module"):
        optim.compile_step(lambda: 0, object(), opt)
    with pytest.raises(SorixTypeError, match="sorix optimizer"):
        optim.compile_step(lambda: 0, model, object())
    step = optim.compile_step(lambda x: model(x), model, opt)  # not a scalar
    with pytest.raises(SorixValueError, match="scalar"):
        step(X)
    stray = sorix.tensor([1.0], requires_grad=True)
    opt.add_param_group({"params": [stray]})
    step = optim.compile_step(lambda x: (model(x) * stray).sum(), model, opt)
    with pytest.raises(SorixValueError, match="the model does not hold"):
        step(X)
