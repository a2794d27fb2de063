"""The run directory contract: paths, files, values, reading runs. Standard library only."""
