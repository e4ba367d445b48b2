"""`python -m nanomq_py ...` is the `nanomq` command."""

import sys

from nanomq_py.cli import main

if __name__ == "__main__":
    sys.exit(main())
