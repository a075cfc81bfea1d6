"""The intermediate representation: the op table, graphs of immutable nodes, their text form."""

from sorix.ir.graph import Graph, GraphBuilder, Node
from sorix.ir.ops import OPS, Op

__all__ = ["Graph", "GraphBuilder", "Node", "OPS", "Op"]
