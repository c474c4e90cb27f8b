"""The package version, importable without importing the API."""

__version__ = "0.1.0"
