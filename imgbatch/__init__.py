"""imgbatch: command-line client for the image-batch service."""

__version__ = "0.1.0"
