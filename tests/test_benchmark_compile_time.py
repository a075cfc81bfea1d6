"""The compile-time benchmark measures what it says: every stage timer is wired to the function
sorix calls (a stage left unwrapped after a refactor would silently read 0 ms), and the timers
are taken off again afterwards. Times themselves are not asserted."""

from __future__ import annotations

import numpy as np

import sorix
from benchmarks import compile_time


def test_every_stage_of_a_gradient_compile_is_timed():
    def build():
        program = sorix.value_and_grad(lambda x: (sorix.sin(x) * x).sum(), tier="numpy")
        return lambda: program(np.linspace(0.0, 1.0, 8))

    total, seconds = compile_time._first_call(build)
    stages = {key.split(":")[0] for key in seconds}
    assert {"trace", "grad pass", "optimize", "codegen"} <= stages
    assert all(v > 0 for v in seconds.values())
    assert sum(seconds.values()) <= total


def test_stage_timers_are_removed_afterwards():
    from sorix import api, transforms
    from sorix.passes import grad, manager

    before = (api.trace_tree, transforms.trace_tree, transforms.replay, grad.grad, manager._run)
    with compile_time._timed_stages(compile_time.time.perf_counter):
        assert transforms.replay is not before[2]
    assert (api.trace_tree, transforms.trace_tree, transforms.replay, grad.grad,
            manager._run) == before
