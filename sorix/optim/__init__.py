"""Optimizers and learning-rate schedulers with the original Sorix's names."""

from sorix.optim import lr_scheduler
from sorix.optim.compiled import CompiledStep, compile_step
from sorix.optim.optim import SGD, Adam, AdamW, Optimizer, RMSprop, SGDMomentum
from sorix.optim.scipy_bridge import ScipyBridge

__all__ = ["Adam", "AdamW", "CompiledStep", "compile_step", "lr_scheduler", "Optimizer",
           "RMSprop", "ScipyBridge", "SGD", "SGDMomentum"]
