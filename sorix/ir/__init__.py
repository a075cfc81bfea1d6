"""The intermediate representation: the op table, graphs of immutable nodes, their text form."""

from sorix.ir.graph import Graph, GraphBuilder, Node
from sorix.ir.limits import DEFAULT_LIMITS, Limits, check_limits
from sorix.ir.ops import OPS, Op

__all__ = ["DEFAULT_LIMITS", "Graph", "GraphBuilder", "Limits", "Node", "OPS", "Op",
           "check_limits"]
