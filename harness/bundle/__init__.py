"""Bundle: the formats every stage reads and writes: the run bundle (``files``), the
facts of the machine it records (``environment``), target verdicts (``verdicts``) and
the comparison JSON (``comparison``: what ``harness compare --json`` writes and the
report reads).
"""
