"""Lets the tests import ``pulseplan_example`` from this directory when it is not installed.

The PulsePlan repository runs these tests without installing the example; once you have run
``pip install -e .`` this does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("pulseplan_example") is None:
    sys.path.insert(0, str(Path(__file__).parent))
