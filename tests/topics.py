"""Real sentences on two topics, for tests where routing must follow meaning."""

from metallm.testing.prompts import ASTRONOMY, COOKING

__all__ = ["ASTRONOMY", "COOKING"]
