"""``python -m benches`` (from the repository root): see ``benches/README.md``."""
import sys

from benches.cli import main

sys.exit(main())
