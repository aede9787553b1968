"""``python -m harness``: the same command as the ``harness`` console script."""

from harness.cli import entry

if __name__ == "__main__":
    entry()
