"""Store: the history of runs, the only place that speaks SQL.

``db`` (the store: runs, their rows, calibrations, the last good run) and
``queries`` (trend series read from it).
"""
