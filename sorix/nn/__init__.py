"""Neural-network building blocks with the original Sorix's names: modules, layers, losses,
initializers. Everything is written with sorix's tensor ops, eager or traced."""

from sorix.nn import init
from sorix.nn.layers import (
    BatchNorm1d,
    Dropout,
    Embedding,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from sorix.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from sorix.nn.net import Module, ModuleList, Sequential

__all__ = [
    "BatchNorm1d", "BCEWithLogitsLoss", "CrossEntropyLoss", "Dropout", "Embedding", "init",
    "LeakyReLU", "Linear", "Module", "ModuleList", "MSELoss", "ReLU", "Sequential", "Sigmoid",
    "Softmax", "Tanh",
]
