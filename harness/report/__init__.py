"""Report: the HTML report and its Markdown summary, built from one bundle and the store.

``html`` (assemble and write the report), ``sections`` (one function per section),
``comparison`` (the comparison section), ``charts`` (inline SVG charts) and
``templates/``. A pure reader: it never runs a workload.
"""
