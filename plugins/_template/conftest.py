"""Lets the tests import ``pulseplan_myprovider`` from this directory when it is not installed
(PulsePlan's own test run keeps the template working without installing it); once you have
run ``pip install -e .`` this does nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("pulseplan_myprovider") is None:
    sys.path.insert(0, str(Path(__file__).parent))
