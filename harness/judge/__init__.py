"""Judge: targets, statistics, comparisons, change points and attributions, read from
bundles and the store.

``targets`` (the targets file and its thresholds), ``verdict`` (one target's
verdict on a run's samples, with its bootstrap interval), ``stats`` (per-round ratios,
intervals, tests, robust noise), ``compare`` (two bundles row by row: the verdict and
its exit status), ``changepoints`` (steps in one series of nights), ``nights`` (every
stored series of a branch and machine searched for them) and ``where`` (the
functions whose own time changed between two profiles). Nothing here runs a workload.
"""
