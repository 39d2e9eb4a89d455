"""The installed version of polystore."""

__version__ = "0.1.0"
