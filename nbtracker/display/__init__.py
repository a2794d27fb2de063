"""The display layer: everything visual, static-first.

- ``text``: pure-text views (runs tables, a run's text view, terminal-safe text); standard
  library only, used by the CLI, reprs and the summary a script prints at ``finish()``;
- ``inline``: the notebook and terminal-IPython wiring (live charts, reprs, ``compare``);
- ``views``, ``sources``, ``render``, ``downsample``, ``html``, ``table``: what ``inline`` draws with.

Importing this package imports nothing heavy; ``inline`` brings in numpy and matplotlib.
"""
