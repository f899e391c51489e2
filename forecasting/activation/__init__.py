"""Plug-in activation: the conformance kit, and the verdicts that let a plug-in take part in a run.

A step of its own, taken before any training plan is built: ``verdicts.activate_plugins``
checks every configured plug-in (its cached verdict, else the kit in sandboxed child processes)
and raises ``PluginNotConformantError`` for one that fails. Building a ``TrainingPlan`` then only
reads the settings. The kit scores a model in a real backtest through the training machinery,
so this package sits above ``forecasting.training``, and nothing in training imports it.
"""
