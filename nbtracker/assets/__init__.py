"""What a run stores besides rows: checkpoints, saved files, artifacts, models and references.

Contents go to the root's content store (``core/blobs.py``) once; run directories show them
under their own names. ``Run`` methods delegate here; reading lives in ``core/records.py``.
"""
