"""Judge: targets, statistics, comparisons and change points, read from bundles and the store.

``targets`` (the targets file and one target's verdict), ``stats`` (per-round ratios,
intervals, tests, noise), ``compare`` (two bundles row by row: the verdict and its
exit status) and ``changepoints`` (steps in a series of nights). Nothing here runs a
workload.
"""
