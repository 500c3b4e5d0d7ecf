# The single source of the project's version: pyproject.toml reads it (dynamic version), and
# a plain constant costs nothing at start-up, unlike importlib.metadata (~20 ms), which
# matters for a lint that runs on every commit.
__version__ = "0.1.0"
