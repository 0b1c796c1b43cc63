"""w2slab: weak-to-strong generalisation experiments with open models, on a laptop CPU or a GPU cluster."""

__version__ = "0.1.0"
