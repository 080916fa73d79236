"""The JSON API under /api/v1 for the systems around the portal.

`tokens` (personal API tokens), `validation` (request bodies checked against the OpenAPI
schemas), `openapi` (the document itself, as data) and `shapes` (rows to JSON and JSON to the
mailbox service's values) import no Flask; `views` is the blueprint and `cli` the command.
"""
