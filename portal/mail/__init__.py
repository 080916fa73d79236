"""The mail engine: account checks, connection guard, provider presets, error catalogue.

Nothing here imports Flask except ``cli.py``; the pages and the letters queue
call into these modules with plain settings objects.
"""
