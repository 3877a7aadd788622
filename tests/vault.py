"""Re-export of :mod:`pulseplan.testing.vault` for the host tests."""

from pulseplan.testing.vault import PUBLIC
from pulseplan.testing.vault import RETURN
from pulseplan.testing.vault import EventLog
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault

__all__ = ["PUBLIC", "RETURN", "EventLog", "Vault", "new_user", "running_vault"]
