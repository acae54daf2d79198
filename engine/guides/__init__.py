"""Guides: one loss each, masked to its region.

`kinds` is the table of guide kinds (spec model, term builder, what each needs), torch-free so that validating a
spec never imports torch; the other modules build and compute the terms. engine/job.py places every guide of a spec
in its region(s) and builds its term through the table.
"""
