"""The provider profiles the fake can speak, by name."""

from __future__ import annotations

from typing import Literal

from pulseplan.testing.fake_canvas import CanvasProfile
from pulseplan.testing.fake_google import GoogleProfile
from pulseplan.testing.fake_microsoft import MicrosoftProfile
from pulseplan.testing.fake_notion import NotionProfile
from pulseplan.testing.fake_profile_base import Profile

ProfileName = Literal["standard", "google", "microsoft", "canvas", "notion"]

PROFILES: dict[str, type[Profile]] = {
    "standard": Profile,
    "google": GoogleProfile,
    "microsoft": MicrosoftProfile,
    "canvas": CanvasProfile,
    "notion": NotionProfile,
}


def profile_class(name: str) -> type[Profile]:
    """The profile class for ``name``.

    :raises ValueError: naming the known profiles.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None


__all__ = [
    "PROFILES",
    "CanvasProfile",
    "GoogleProfile",
    "MicrosoftProfile",
    "NotionProfile",
    "Profile",
    "ProfileName",
    "profile_class",
]
