"""The single version number of the Python package (the JupyterLab extension reuses it)."""

__version__ = "0.1.0"
