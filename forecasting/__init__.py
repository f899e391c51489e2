"""Workflow-orchestrated AutoML forecasting platform."""

__version__ = "0.1.0"
