from esper_migrate._version import __version__  # one version for the whole distribution

__all__ = ["__version__"]
