"""Report: the HTML report and its Markdown summary, built from one bundle and the store.

``html`` (assemble and write the report), ``sections`` (one function per section),
``comparison`` (the comparison section, verdict first), ``charts`` (inline SVG
charts), ``flame`` (inline SVG flame graphs of the bundle's profiles, and
differential ones of a comparison) and ``templates/``. A pure reader: it never runs a
workload.
"""
