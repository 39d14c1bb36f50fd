"""The PLN network: video and sentence encoders, sparse 2D maps, the staged localizers."""

from pln.model.pln import PLN, PLNOutput

__all__ = ["PLN", "PLNOutput"]
