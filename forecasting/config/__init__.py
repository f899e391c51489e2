"""Typed settings loaded from config/*.yaml plus environment overrides."""

from forecasting.config.loader import ConfigError, load_settings
from forecasting.config.settings import CandidateSettings, Settings, default_season_length

__all__ = ["CandidateSettings", "ConfigError", "Settings", "default_season_length", "load_settings"]
