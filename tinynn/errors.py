"""Exceptions of tinynn."""


class DivergenceError(FloatingPointError, ValueError):
    """The loss or a gradient became NaN or infinite during training.

    A FloatingPointError that is also a ValueError, so code written for scikit-learn (which catches
    ValueError) keeps working. The model's parameters are left at their last finite values.
    """


class DivergenceGuard:
    """Decides when training has diverged: a NaN or infinite loss, or a loss 10⁶ times the first one seen
    (no sane run climbs a million-fold; a learning rate far too large can keep the loss finite but huge)."""

    def __init__(self, factor=1e6):
        self.factor = factor
        self.ceiling = None

    def diverged(self, value) -> bool:
        import math

        if self.ceiling is None and math.isfinite(value):
            self.ceiling = self.factor * max(1.0, abs(value))
        return not math.isfinite(value) or value > self.ceiling
