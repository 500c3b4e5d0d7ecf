"""Reference Phase 4 policy, rollout buffer, PPO trainer and built-in environment."""

from esper_ref._version import __version__

__all__ = ["__version__"]
