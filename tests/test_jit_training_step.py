"""A training step in the usual style (zero_grad, forward, loss, backward, step) under
`sorix.jit` compiles into one stateful program that gives the eager loop's numbers.

Same seeds, float64: losses, parameters, BatchNorm statistics, optimizer state and Dropout
masks of a few jit steps equal the eager ones to rounding; nothing real changes while the
step is traced; what cannot be compiled is a clear error. tier="numpy": no native compiles.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sorix
from sorix import nn, optim
from sorix.errors import SorixTypeError, SorixValueError, TraceError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 4))
Y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)

OPTIMIZERS = {
    "momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    "adam": lambda ps: optim.Adam(ps, lr=0.01),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01),
}


def build(make_optimizer, norm=False, dropout=0.0):
    np.random.seed(0)
    # BatchNorm after the ReLU: right before it, the first bias's gradient is zero but for
    # rounding, which Adam scales up to steps of either sign (comparing noise)
    layers = [nn.Linear(4, 8, dtype="float64"), nn.ReLU()]
    layers += [nn.BatchNorm1d(8, dtype="float64")] if norm else []
    layers += [nn.Dropout(dropout)] if dropout else []
    model = nn.Sequential(*layers, nn.Linear(8, 3, dtype="float64"))
    return model, make_optimizer(model.parameters())


def usual_step(model, opt, criterion=None):
    criterion = criterion or nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def agree(make_optimizer, steps=3, **layers):
    """(eager losses, jit losses), after checking the models and optimizer states agree."""
    eager_model, eager_opt = build(make_optimizer, **layers)
    jit_model, jit_opt = build(make_optimizer, **layers)
    x, y = sorix.tensor(X), sorix.tensor(Y)
    np.random.seed(1)
    eager_step = usual_step(eager_model, eager_opt)
    eager = [eager_step(x, y).item() for _ in range(steps)]
    np.random.seed(1)
    jit_step = sorix.jit(usual_step(jit_model, jit_opt), tier="numpy")
    jitted = [jit_step(x, y).item() for _ in range(steps)]
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    for (key, a), (_, b) in zip(eager_model.state_dict().items(),
                                jit_model.state_dict().items()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-13, err_msg=key)
    eager_state, jit_state = eager_opt.state_dict(), jit_opt.state_dict()
    assert jit_state["param_groups"] == eager_state["param_groups"]
    for number, entries in eager_state["state"].items():
        for key, value in entries.items():
            np.testing.assert_allclose(jit_state["state"][number][key], value, rtol=1e-10,
                                       atol=1e-13, err_msg=f"{number}.{key}")
    assert jit_step.trace_count == 1
    return eager, jitted


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jit_steps_equal_eager_steps(name):
    eager, _ = agree(OPTIMIZERS[name])
    assert eager[-1] < eager[0]


def test_batchnorm_and_dropout_in_training_then_eval_mode():
    agree(OPTIMIZERS["adam"], norm=True, dropout=0.3)
    eager_model, eager_opt = build(OPTIMIZERS["momentum"], norm=True, dropout=0.3)
    jit_model, jit_opt = build(OPTIMIZERS["momentum"], norm=True, dropout=0.3)
    x, y = sorix.tensor(X), sorix.tensor(Y)
    eager_step = usual_step(eager_model, eager_opt)
    jit_step = sorix.jit(usual_step(jit_model, jit_opt), tier="numpy")
    results = []
    for step, model in ((eager_step, eager_model), (jit_step, jit_model)):
        np.random.seed(2)
        losses = [step(x, y).item()]  # training mode: masks and batch statistics
        model.eval()  # the same function, now with the running statistics and no masks
        losses += [step(x, y).item(), step(x, y).item()]
        results.append(losses)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)
    np.testing.assert_allclose(jit_model[2].running_var.numpy(),
                               eager_model[2].running_var.numpy(), rtol=1e-12)
    assert jit_step.trace_count == 1  # a mode is a program of the step, not a new signature


def test_jit_and_eager_steps_mix_on_one_model():
    eager_model, eager_opt = build(OPTIMIZERS["adam"], norm=True, dropout=0.3)
    model, opt = build(OPTIMIZERS["adam"], norm=True, dropout=0.3)
    x, y = sorix.tensor(X), sorix.tensor(Y)
    np.random.seed(3)
    eager_step = usual_step(eager_model, eager_opt)
    eager = [eager_step(x, y).item() for _ in range(4)]
    np.random.seed(3)
    step = usual_step(model, opt)
    jit_step = sorix.jit(step, tier="numpy")
    mixed = [f(x, y).item() for f in (step, jit_step, step, jit_step)]
    np.testing.assert_allclose(mixed, eager, rtol=1e-12)


def test_state_is_updated_in_place_and_retraced_only_for_new_batch_shapes():
    model, opt = build(OPTIMIZERS["adam"], norm=True)
    tensors = [t for _, t in model._named_tensors()]
    arrays = [t.data for t in tensors]
    before = [a.copy() for a in arrays]
    step = sorix.jit(usual_step(model, opt), tier="numpy")
    for _ in range(3):
        step(X, Y)
    after = [t for _, t in model._named_tensors()]
    assert all(a is b for a, b in zip(tensors, after))
    assert all(t.data is a for t, a in zip(tensors, arrays))  # the same arrays, written
    assert all(not np.array_equal(a, b) for a, b in zip(arrays, before))
    assert opt.state_dict()["state"][0]["step"] == 3
    assert step.trace_count == 1
    step(X[:16], Y[:16])
    assert step.trace_count == 2
    step(X, Y)
    assert step.trace_count == 2


def test_a_training_run_converges_and_the_scheduler_applies():
    model, opt = build(lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9))
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
    step = sorix.jit(usual_step(model, opt), tier="numpy")
    losses = []
    for _ in range(60):
        losses.append(step(X, Y).item())
        scheduler.step()  # outside the step: the lr is an input of the program
    assert losses[-1] < losses[0] / 10
    assert opt.param_groups[0]["lr"] == 0.0625
    assert step.trace_count == 1
    eager_model, eager_opt = build(lambda ps: optim.SGD(ps, lr=0.5, momentum=0.9))
    eager_scheduler = optim.lr_scheduler.StepLR(eager_opt, step_size=20, gamma=0.5)
    eager_step = usual_step(eager_model, eager_opt)
    eager = []
    for _ in range(60):
        eager.append(eager_step(sorix.tensor(X), sorix.tensor(Y)).item())
        eager_scheduler.step()
    np.testing.assert_allclose(losses, eager, rtol=1e-9)


def test_extra_outputs_and_the_program_it_shows():
    model, opt = build(OPTIMIZERS["adam"])
    criterion = nn.CrossEntropyLoss()

    @sorix.jit(tier="numpy")
    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        loss = criterion(logits, y)
        loss.backward()
        opt.step()
        return loss, (logits.argmax(axis=1) == y).float().mean()

    loss, accuracy = step(X, Y)
    assert loss.shape == () and 0.0 <= accuracy.item() <= 1.0
    graph = step.graph(X, Y)
    # the batch, 4 parameters, their 8 Adam moments and per-parameter numbers (lr, ...)
    numbers = len(opt._scalars(opt.param_groups[0], 1))
    assert len(graph.inputs) == 2 + 4 + 8 + 4 * numbers
    assert "def " in step.source(X, Y)
    assert step.trace_count == 1


def test_nothing_real_changes_while_the_step_is_traced():
    model, opt = build(OPTIMIZERS["momentum"], norm=True, dropout=0.5)
    for p in model.parameters():
        p.grad = sorix.ones(p.shape, dtype="float64")
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    random_state = np.random.get_state()[1].copy()
    step = sorix.jit(usual_step(model, opt), tier="numpy")
    step.graph(X, Y)  # traces and lowers; runs nothing
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k], err_msg=k)
    assert all(np.array_equal(p.grad.numpy(), np.ones(p.shape)) for p in model.parameters())
    assert all(opt.state_dict()["state"][i]["step"] == 0 for i in range(4))
    np.testing.assert_array_equal(np.random.get_state()[1], random_state)


# what is not compiled says so ---------------------------------------------------------------


def test_backward_on_a_traced_tensor_outside_a_jit_step():
    model, opt = build(OPTIMIZERS["momentum"])
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(SorixValueError, match="backward\\(\\) on a traced tensor"):
        sorix.trace(usual_step(model, opt), X, Y)
    assert all(np.array_equal(p.numpy(), b) for p, b in zip(model.parameters(), before))


def test_a_step_that_cannot_be_compiled_is_an_error():
    model, opt = build(OPTIMIZERS["momentum"])
    criterion = nn.CrossEntropyLoss()

    def no_zero_grad(x, y):
        criterion(model(x), y).backward()
        opt.step()

    with pytest.raises(SorixValueError, match="accumulating gradients across calls"):
        sorix.jit(no_zero_grad)(X, Y)

    def no_step(x, y):
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    with pytest.raises(SorixValueError, match="no optimizer.step"):
        sorix.jit(no_step)(X, Y)

    def zero_between(x, y):
        criterion(model(x), y).backward()
        opt.zero_grad()
        opt.step()

    with pytest.raises(SorixValueError, match="between backward"):
        sorix.jit(zero_between)(X, Y)

    other = optim.SGD(model.parameters(), lr=0.1)

    def two_optimizers(x, y):
        opt.zero_grad()
        other.zero_grad()
        criterion(model(x), y).backward()

    with pytest.raises(SorixValueError, match="second optimizer"):
        sorix.jit(two_optimizers)(X, Y)

    def no_backward(x, y):
        opt.zero_grad()
        opt.step()
        return model(x)

    with pytest.raises(SorixValueError, match="no loss.backward"):
        sorix.jit(no_backward)(X, Y)

    def item(x, y):
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    with pytest.raises(TraceError, match="item"):
        sorix.jit(item)(X, Y)

    def not_scalar(x, y):
        opt.zero_grad()
        model(x).backward()
        opt.step()

    with pytest.raises(SorixValueError, match="needs gradient="):
        sorix.jit(not_scalar)(X, Y)

    def after_step(x, y):
        usual_step(model, opt)(x, y)
        return model(x)

    def closure(x, y):
        opt.zero_grad()
        criterion(model(x), y).backward()
        opt.step(lambda: None)

    with pytest.raises(SorixTypeError, match="closure"):
        sorix.jit(closure)(X, Y)

    def grad_of_a_step(x, y):
        usual_step(model, opt)(x, y)
        return x.sum()

    with pytest.raises(SorixValueError, match="only sorix.jit compiles a training step"):
        sorix.grad(grad_of_a_step)(X, Y)

    with pytest.raises(SorixValueError, match="after optimizer.step"):
        sorix.jit(after_step, tier="numpy")(X, Y)
    assert opt.state_dict()["state"] == {} or all(
        s["step"] == 0 for s in opt.state_dict()["state"].values())


def test_an_optimizer_over_tensors_the_step_does_not_call_through_modules():
    model, _ = build(OPTIMIZERS["momentum"])
    stray = sorix.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD(model.parameters() + [stray], lr=0.1)
    criterion = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = criterion(model(x) * stray, y)
        loss.backward()
        opt.step()
        return loss

    with pytest.raises(SorixValueError, match="modules the step calls"):
        sorix.jit(step, tier="numpy")(X, Y)
    np.testing.assert_array_equal(stray.numpy(), np.ones(3))


def test_an_optimizer_with_its_own_step_is_refused_before_it_runs():
    class Custom(optim.SGD):
        def step(self, closure=None):
            raise AssertionError("never run while traced")

    model, _ = build(OPTIMIZERS["momentum"])
    opt = Custom(model.parameters(), lr=0.1)
    with pytest.raises(SorixTypeError, match="overrides step"):
        sorix.jit(usual_step(model, opt))(X, Y)


def test_zero_grad_after_step_is_the_other_usual_order():
    eager_model, eager_opt = build(OPTIMIZERS["rmsprop"])
    model, opt = build(OPTIMIZERS["rmsprop"])

    def make(m, o):
        def step(x, y):
            loss = nn.CrossEntropyLoss()(m(x), y)
            loss.backward()
            o.step()
            o.zero_grad()
            return loss
        return step

    x, y = sorix.tensor(X), sorix.tensor(Y)
    eager_step, jit_step = make(eager_model, eager_opt), sorix.jit(make(model, opt), tier="numpy")
    eager = [eager_step(x, y).item() for _ in range(3)]
    np.testing.assert_allclose([jit_step(x, y).item() for _ in range(3)], eager, rtol=1e-12)


def test_backward_with_a_gradient_and_model_zero_grad():
    model, opt = build(OPTIMIZERS["momentum"])
    eager_model, eager_opt = build(OPTIMIZERS["momentum"])
    weights = sorix.tensor(np.linspace(0.5, 1.5, 32))

    def make(m, o):
        def step(x, y):
            m.zero_grad()
            losses = nn.CrossEntropyLoss(reduction="none")(m(x), y)
            losses.backward(weights)
            o.step()
            return losses.sum()
        return step

    jit_step = sorix.jit(make(model, opt), tier="numpy")
    eager_step = make(eager_model, eager_opt)
    jitted = [jit_step(X, Y).item() for _ in range(2)]
    eager = [eager_step(sorix.tensor(X), sorix.tensor(Y)).item() for _ in range(2)]
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)


def test_the_readme_jit_step_prints_what_the_readme_shows(tmp_path):
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    section = readme[readme.index("### Compiled training"):]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    code, shown = blocks[0][1], blocks[1][1]
    (tmp_path / "step.py").write_text(code)
    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "step.py"], cwd=tmp_path, capture_output=True,
                            text=True, env=env, check=True)
    assert result.stdout == shown


def test_two_modules_and_a_penalty_on_a_parameter():
    x, y = sorix.tensor(X), sorix.tensor(Y)
    results = []
    for jit in (False, True):
        np.random.seed(0)
        encoder = nn.Sequential(nn.Linear(4, 8, dtype="float64"),
                                nn.BatchNorm1d(8, dtype="float64"), nn.ReLU())
        head = nn.Linear(8, 3, dtype="float64")
        opt = optim.Adam(encoder.parameters() + head.parameters(), lr=0.01)
        criterion = nn.CrossEntropyLoss()

        def step(x, y, encoder=encoder, head=head, opt=opt, criterion=criterion):
            opt.zero_grad()
            loss = criterion(head(encoder(x)), y) + 0.01 * (head.W ** 2).sum()
            loss.backward()
            opt.step()
            return loss

        run = sorix.jit(step, tier="numpy") if jit else step
        losses = [run(x, y).item() for _ in range(3)]
        results.append((losses, head.W.numpy().copy(), encoder[1].running_var.numpy().copy()))
    (eager, w, var), (jitted, jit_w, jit_var) = results
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    np.testing.assert_allclose(jit_w, w, rtol=1e-10)
    np.testing.assert_allclose(jit_var, var, rtol=1e-10)


def test_the_step_program_on_the_native_tier():
    pytest.importorskip("numba")
    eager_model, eager_opt = build(OPTIMIZERS["adam"], norm=True, dropout=0.3)
    model, opt = build(OPTIMIZERS["adam"], norm=True, dropout=0.3)
    x, y = sorix.tensor(X), sorix.tensor(Y)
    np.random.seed(1)
    eager_step = usual_step(eager_model, eager_opt)
    eager = [eager_step(x, y).item() for _ in range(2)]
    np.random.seed(1)
    jit_step = sorix.jit(usual_step(model, opt), tier="native")
    np.testing.assert_allclose([jit_step(x, y).item() for _ in range(2)], eager, rtol=1e-12)
    np.testing.assert_allclose(model[0].W.numpy(), eager_model[0].W.numpy(), rtol=1e-10)
