"""Reads: what pages and exports list, and who may see what; one module per subject.

Import from the subject's module (``curation.selectors.reviews``...). The review gate lives in
``reviews`` (the ONE definition of "approved"); what a batch made in ``batches``; the golden set
in ``datasets``.
"""
