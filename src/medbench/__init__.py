"""medbench: the same model, the same batches, the same recipe in PyTorch, JAX and Keras on MedMNIST."""

__version__ = "0.1.0"
