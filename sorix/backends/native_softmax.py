"""The native backend's logsumexp, softmax and log_softmax: loop nests written as source text.

They compute what `sorix.ir.kernels` computes on the numpy tier: each slice along the reduced
axes is shifted by its maximum, or by 0 where that maximum is not finite, so |x| ~ 1000
neither overflows nor underflows, a slice of -inf gives -inf (softmax: NaN), and NaN and +inf
propagate as numpy's do. A loop over the kept axes runs, per slice, a pass for the maximum
(NaN-propagating, as numpy's max), one for the sum of exponentials (accumulated in float64, as
the native sums are) and, for the softmaxes, one writing the result. Empty reductions never
reach here: tracing refuses them (an empty slice has no maximum to shift by).
"""

from __future__ import annotations

from dataclasses import dataclass

from sorix.backends.native_indexing import element


@dataclass(frozen=True)
class Slices:
    """A softmax-like op of node `nid` over `axes` of an input of `shape`: `value` reads one
    element of the input (at the loop variables i0, i1, ... , cast to the result's type `T`),
    `exp` and `log` name the math functions of that type."""

    nid: int
    shape: tuple[int, ...]
    axes: tuple[int, ...]
    value: str
    T: str  # noqa: N815
    exp: str
    log: str


def shifted_exp(s: Slices, kind: str, buffer: str, keepdims: bool = True) -> list[str]:
    """The statements of `kind` ('logsumexp', 'softmax' or 'log_softmax'), after `buffer`,
    the statement giving the result its array `v<nid>`."""
    nid, shape, axes, T = s.nid, s.shape, s.axes, s.T  # noqa: N806
    variables = [f"i{d}" for d in range(len(shape))]
    here = element(f"v{nid}", variables)
    lines = [buffer]
    indent = ""
    for d, n in enumerate(shape):
        if d not in axes:
            lines.append(f"{indent}for i{d} in range({n}):")
            indent += "    "

    def over_axes(*body: str) -> list[str]:
        inner, out = indent, []
        for d in axes:
            out.append(f"{inner}for i{d} in range({shape[d]}):")
            inner += "    "
        return out + [inner + line for line in body]

    m, total, e = f"m{nid}", f"s{nid}", f"e{nid}"
    lines.append(f"{indent}{m} = {T}(-np.inf)")
    lines += over_axes(f"x{nid} = {s.value}",
                       f"{m} = x{nid} if (x{nid} > {m} or x{nid} != x{nid}) else {m}")
    lines.append(f"{indent}{m} = {m} if np.isfinite({m}) else {T}(0)")
    lines.append(f"{indent}{total} = 0.0")
    lines += over_axes(f"{e} = {s.exp}({s.value} - {m})",
                       *([f"{here} = {e}"] if kind == "softmax" else []),
                       f"{total} += {e}")
    result = f"{s.log}({T}({total})) + {m}"
    if kind == "softmax":
        lines += over_axes(f"{here} = {here} / {T}({total})")
    elif kind == "log_softmax":
        lines.append(f"{indent}l{nid} = {result}")
        lines += over_axes(f"{here} = {s.value} - l{nid}")
    else:
        kept = [("0" if d in axes else v) for d, v in enumerate(variables)
                if keepdims or d not in axes]
        lines.append(f"{indent}{element(f'v{nid}', kept)} = {result}")
    return lines
