"""Forecast evaluation: losses and benchmark scoring."""
