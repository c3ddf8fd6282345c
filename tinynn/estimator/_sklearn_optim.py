r"""scikit-learn's update rules for solver='sgd' and 'adam', on tinynn's fused optimizer kernels.

tinynn.optim keeps torch.optim's forms; the estimators take sklearn's steps, so that the same code with the
same random_state fits the same model as sklearn:

sklearn SGD    v = μ v - η g;   θ += v   (θ += μ v - η g with Nesterov)        -- η inside the velocity
torch SGD      b = μ b + g;     θ -= η b (θ -= η (g + μ b) with Nesterov)
               The two agree with v = -η b while η is constant; when a schedule changes η (invscaling,
               adaptive) the torch buffer is rescaled by η_old/η_new before the next step, which keeps
               v = -η b exactly, so the torch kernel takes sklearn's step.
sklearn Adam   η_t = η √(1-β₂ᵗ)/(1-β₁ᵗ);  θ -= η_t m / (√v + ε)
torch Adam     θ -= η/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε')   — equal to sklearn's with ε' = ε/√(1-β₂ᵗ).
"""
from __future__ import annotations

import math

from ..kernels import ops

from .. import optim


class SklearnSGD(optim.SGD):
    """sklearn's SGDOptimizer update (momentum, Nesterov) through torch's fused SGD kernel."""

    def __init__(self, params, lr, momentum=0.9, nesterov=True, **l1):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=bool(nesterov and momentum > 0), **l1)
        self._last_lr = self.lr

    def step(self, closure=None):
        if self.momentum and self.t > 0 and self.lr != self._last_lr:     # keep v = -η b as η changes
            factor = self._last_lr / self.lr if self.lr else 0.0
            for buf in self.state["momentum_buffer"]:
                ops.scale(buf, factor)
        self._last_lr = self.lr
        return super().step(closure)


class SklearnAdam(optim.Adam):
    """sklearn's AdamOptimizer update (bias correction folded into the step size) via torch's Adam kernel."""

    def _scalars(self):
        s = super()._scalars()
        s["eps"] = self.eps / math.sqrt(s["bc2"])
        return s
