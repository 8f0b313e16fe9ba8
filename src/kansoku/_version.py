"""The package version, apart from the package face so that its parts can read it without a cycle."""

__version__ = "0.1.0"
