"""Measure: the only stage that runs workloads.

``run`` (one checkout, every workload, targets, the bundle), ``interleave`` (two git
refs alternately, in a balanced order), ``calibrate`` (an A/A run: this machine's
noise), ``checkout`` (a worktree and a virtualenv per git ref), ``replay`` (a trace
under many settings, the first diverging event) and ``profiles`` (the hot paths'
profiles, captured while measuring). It writes bundles and appends to the store;
judge and report read what it wrote and never import it.
"""
