"""srdistill: knowledge distillation for single-image super-resolution."""

__version__ = "0.1.0"
