"""python -m tools.robustness (make robustness): see tools/robustness/__init__.py."""
import sys

from tools.robustness.cli import main

sys.exit(main())
