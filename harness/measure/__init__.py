"""Measure: the only stage that runs workloads.

``run`` (one checkout, every workload and the instruction clock, targets, the bundle),
``interleave`` (two git refs alternately, in a balanced order; disturbed rounds run
again; ``--until-decided``; a round's job and files in ``round_job``, each side's passes
outside the rounds, instructions and profiles, in ``sides``), ``calibrate`` (an A/A run:
this machine's noise), ``checkout`` (a worktree and a virtualenv per git ref),
``replay`` (a trace under many settings and hash seeds, the first diverging event),
``profiles`` (the hot paths' profiles, captured while measuring), ``load`` (how busy
other processes kept the machine during a round), ``manifest`` (the one builder of a
run's manifest), ``workload_process`` (one workload as a child process: its command,
progress, skip line and samples; shared by run, interleave and calibrate) and
``preflight`` (the checks made before anything runs: writable output, switches,
endpoint, event loop, history store). It writes bundles and appends to the store; judge
and report read what it wrote and never import it.
"""
