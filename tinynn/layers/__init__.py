"""Every layer of tinynn."""
from .activations import (ACTIVATIONS, ELU, GELU, Activation, Exp, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Softplus,
                          Tanh)
from .base import Layer
from .dropout import Dropout
from .embedding import Embedding
from .fused import LinearActivation
from .linear import Linear
from .normalization import BatchNorm1d, LayerNorm

__all__ = ["Layer", "Linear", "Activation", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Exp", "GELU", "SiLU", "ELU",
           "Softplus", "BatchNorm1d",
           "LayerNorm", "Dropout", "Embedding", "LinearActivation", "ACTIVATIONS"]
