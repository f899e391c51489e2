"""The fixture plug-ins: installed packages, discoverable only while a test asks for them.

``fixture_plugins`` lives in tests/conftest.py (the unit tests of training use it too).
"""
