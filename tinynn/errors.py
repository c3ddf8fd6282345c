"""Exceptions of tinynn."""


class DivergenceError(FloatingPointError, ValueError):
    """The loss or a gradient became NaN or infinite during training.

    A FloatingPointError that is also a ValueError, so code written for scikit-learn (which catches
    ValueError) keeps working. The model's parameters are left at their last finite values.
    """


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (sklearn's NotFittedError is used when sklearn is present)."""
