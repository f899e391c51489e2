"""The model contract, the built-in adapters and plug-in discovery."""
