"""pyperf workloads that replay recorded traces against the reference implementation."""
