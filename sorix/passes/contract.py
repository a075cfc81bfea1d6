"""contract_products: the sum of an elementwise product of two vectors as one dot product.

`sum(a * b)` makes a temporary of a's length and reads it again; `a @ b` multiplies and adds
in one BLAS call (a loop the native tier writes itself). The rewrite is a lowering: it runs
after the grad pass (it is one of the manager's LOWERING_PASSES), because the product rule
differentiates `a * b` with one multiplication per operand, where the matrix product rule
would reshape, transpose and multiply matrices.

What it leaves alone, so that no value changes beyond the last bits' rounding (the products
are the same; BLAS adds them in another order):
- a product something else also reads (it is computed anyway: summing it is the cheaper);
- vectors of fewer than 2 elements (numpy's sum of [-0.0] is 0.0, its dot product -0.0);
- a sum whose dtype the product's would not be (integers and booleans promote in sum only).

    %0 = input(name='a') : float64[8]
    %1 = input(name='b') : float64[8]
    %2 = mul(%0, %1) : float64[8]
    %3 = sum(%2, axis=None, keepdims=False) : float64[]
    return (%3)
becomes
    %0 = input(name='a') : float64[8]
    %1 = input(name='b') : float64[8]
    %2 = matmul(%0, %1) : float64[]
    return (%2)
"""

from __future__ import annotations

from sorix.ir.graph import Graph, Node
from sorix.passes.canonical import emit
from sorix.passes.rebuild import Change, Rebuild

RULE = "the sum of a product of two vectors is their dot product"


def contract_products(graph: Graph) -> Graph:
    """`sum(mul(a, b))` over vectors `a`, `b` of one shape and dtype -> `matmul(a, b)`."""
    nodes = graph.nodes
    sums = [nid for nid, node in nodes.items()
            if node.op == "sum" and nodes[node.args[0]].op == "mul"]
    if not sums:  # most graphs: no users counted
        return graph
    users: dict[int, int] = {}
    for node in nodes.values():
        for arg in node.args:
            users[arg] = users.get(arg, 0) + 1
    outputs = set(graph.outputs)
    products = {nodes[nid].args[0]: nid for nid in sums
                if _dot(graph, nodes[nid], users, outputs)}
    if not products:
        return graph
    rebuild = Rebuild(graph)
    for nid in graph.order():
        node = graph.nodes[nid]
        if nid in products:  # the product: read by its sum only, which takes its operands
            continue
        if node.op == "sum" and node.args[0] in products:
            a, b = graph.nodes[node.args[0]].args
            rebuild.mapping[nid] = emit(rebuild, "matmul", rebuild.mapping[a],
                                        rebuild.mapping[b])
            rebuild.changes.append(Change("rewritten", rebuild.old_text(nid), rule=RULE))
        else:
            rebuild.copy(nid, node)
    return rebuild.finish()


def _dot(graph: Graph, node: Node, users: dict[int, int], outputs: set[int]) -> bool:
    """Whether `node` is a full sum of a product, read by it alone, of two like vectors."""
    if node.op != "sum" or node.params["keepdims"] or node.params["axis"] not in (None, (0,)):
        return False
    product = graph.nodes[node.args[0]]
    if product.op != "mul" or users[node.args[0]] != 1 or node.args[0] in outputs:
        return False
    a, b = (graph.nodes[arg] for arg in product.args)
    return (len(product.shape) == 1 and product.shape[0] >= 2 and a.shape == b.shape
            == product.shape and a.dtype == b.dtype == product.dtype == node.dtype
            and product.dtype.startswith(("float", "complex")))
