"""The seed page "Computational Graph" of the original Sorix documentation, as a script.

Everything down to the "Added for running as a script" line is the page's code, verbatim, with
its indentation restored (the page lost it) and nothing else changed. Values of the matrix
example come from unseeded np.random.rand, as on the page, so they differ from run to run.

A script cannot display a Digraph the way a notebook cell does, so the part after that line
renders the drawings to files: `python examples/seed_computational_graph.py [OUTDIR]` writes
SVG and PNG files to OUTDIR (default `sorix-demo`) when Graphviz's `dot` is installed.
"""
# The verbatim part keeps the page's import order and long lines:
# ruff: noqa: I001, E501

# Uncomment the next line and run this cell to install sorix
#!pip install 'sorix @ git+https://github.com/Mitchell-Mirano/sorix.git@main'
from sorix import tensor
import numpy as np

from graphviz import Digraph
import shutil


def trace_graph(root):
    ops = {}
    edges = []
    def build(t):
        tid = id(t)
        if t._op and tid not in ops:
            ops[tid] = t
        for child in t._prev:
            edges.append((child, t))
            build(child)
    build(root)
    return ops, edges


def tensor_label(t):
    if hasattr(t, "numpy"):
        arr = t.numpy()
    elif hasattr(t.data, "get"):
        arr = t.data.get()
    else:
        arr = np.array(t.data)
    if arr.ndim == 0:
        return str(arr.item())
    if arr.size <= 6:
        return str(arr.round(2))
    return f"{arr.shape}"


def draw_graph_ops_forward(root):
    dot = Digraph(graph_attr={"rankdir": "LR"})
    ops, edges = trace_graph(root)
    for op_id, tensor_obj in ops.items():
        label = tensor_obj._op
        dot.node(str(op_id), label, shape="circle",
                 style="filled", color="#F7DC6F")
    for parent_tensor, child_tensor in edges:
        label = tensor_label(parent_tensor)
        edge_color = "green" if parent_tensor.requires_grad else "#888888"
        if parent_tensor._op:
            parent_node = str(id(parent_tensor))
        else:
            parent_node = f"INPUT_{id(parent_tensor)}"
            dot.node(parent_node, "", shape="point", width="0.1")
        child_node = str(id(child_tensor))
        dot.edge(parent_node, child_node,
                 label=f'data={label}', color=edge_color)
    final_label = tensor_label(root)
    final_color = "green" if root.requires_grad else "#888888"
    final_node = f"FINAL_{id(root)}"
    dot.node(final_node, "", shape="point", width="0.1")
    if root._op:
        dot.edge(str(id(root)), final_node,
                 label=final_label, color=final_color)
    if shutil.which("dot") is None:
        print("Warning: 'dot' executable from Graphviz not found. Graph rendering skipped.")
        print("To see the graph, please install Graphviz (e.g., 'sudo apt install graphviz' on Linux or 'brew install graphviz' on macOS).")
        return None
    return dot


def gradient_label(t):
    """Muestra el gradiente del tensor en lugar de su valor"""
    if t.grad is None:
        return "grad=None"
    if hasattr(t.grad, "get"):
        grad_arr = t.grad.get()
    else:
        grad_arr = np.array(t.grad)
    if grad_arr.ndim == 0:
        return f"grad={grad_arr.item():.2f}"
    if grad_arr.size <= 6:
        grad_list = grad_arr.round(2)
        return f"grad={grad_list}"
    return f"grad.shape={grad_arr.shape}"


def draw_graph_ops_backward(root):
    dot = Digraph(graph_attr={"rankdir": "RL"})
    ops, edges = trace_graph(root)
    for op_id, tensor_obj in ops.items():
        label = tensor_obj._op
        dot.node(str(op_id), label, shape="circle",
                 style="filled", color="#F7DC6F")
    for parent_tensor, child_tensor in edges:
        label = gradient_label(parent_tensor)
        edge_color = "green" if parent_tensor.grad is not None else "#888888"
        child_node = str(id(child_tensor))
        if parent_tensor._op:
            parent_node = str(id(parent_tensor))
        else:
            parent_node = f"INPUT_{id(parent_tensor)}"
            dot.node(parent_node, "", shape="point", width="0.1")
        dot.edge(child_node, parent_node,
                 label=label, color=edge_color)
    final_label = gradient_label(root)
    final_color = "green" if root.grad is not None else "#888888"
    final_node = f"FINAL_{id(root)}"
    dot.node(final_node, "", shape="point", width="0.1")
    if root._op:
        dot.edge(final_node, str(id(root)),
                 label=final_label, color=final_color)
    if shutil.which("dot") is None:
        print("Warning: 'dot' executable from Graphviz not found. Graph rendering skipped.")
        print("To see the graph, please install Graphviz (e.g., 'sudo apt install graphviz' on Linux or 'brew install graphviz' on macOS).")
        return None
    return dot


x = tensor([3.0], requires_grad=True)
y = tensor([4.0], requires_grad=True)
f = x**2 + y**2
draw_graph_ops_forward(f)

f.backward()
print(f"df/dx: {x.grad}")
print(f"df/dy: {y.grad}")

draw_graph_ops_backward(f)

x = tensor(np.random.rand(2, 2).round(2), requires_grad=True)
y = tensor(np.random.rand(2, 2).round(2), requires_grad=True)
f = x**2 @ y**2
draw_graph_ops_forward(f)

f.sum().backward()
print(f"df/dx: {x.grad}")
print(f"df/dy: {y.grad}")

draw_graph_ops_backward(f)


# ---------------------------------------------------------------------------------------------
# Added for running as a script (not on the seed page): render the drawings to files.
#
# In a notebook each `draw_graph_ops_...(f)` cell displays the Digraph it returns; in a script
# those return values are dropped, and by now the scalar example's tensors have been replaced by
# the matrix example's. So the scalar graph is built again exactly as above, and the matrix
# graph (already differentiated above) is drawn again; each Digraph is rendered to OUTDIR.


def _render(dot, outdir, name):
    """Write `name`.svg and `name`.png; `dot` is None when Graphviz is missing."""
    if dot is None:
        return []
    written = []
    for fmt in ("svg", "png"):
        path = dot.render(filename=name, directory=outdir, format=fmt, cleanup=True)
        written.append(path)
    return written


def _main(argv):
    import os
    outdir = argv[1] if len(argv) > 1 else "sorix-demo"
    os.makedirs(outdir, exist_ok=True)
    if shutil.which("dot") is None:
        print("Graphviz 'dot' not found: no drawings written.")
        return 0
    sx = tensor([3.0], requires_grad=True)
    sy = tensor([4.0], requires_grad=True)
    sf = sx**2 + sy**2
    written = _render(draw_graph_ops_forward(sf), outdir, "scalar_forward")
    sf.backward()
    written += _render(draw_graph_ops_backward(sf), outdir, "scalar_backward")
    written += _render(draw_graph_ops_forward(f), outdir, "matrix_forward")
    written += _render(draw_graph_ops_backward(f), outdir, "matrix_backward")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv))
