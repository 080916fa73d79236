"""Real test servers for the mail engine and whoever sends or fetches letters.

Use them as a pytest plugin: ``pytest_plugins = ["tests.servers.fixtures"]``.
See ``fixtures.py`` for the fixtures and what each yields.
"""
