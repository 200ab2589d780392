"""AAS core: all logic of the automated attendance system (pages stay thin)."""

__version__ = "0.1.0"
