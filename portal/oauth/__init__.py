"""Mailboxes that sign in with the provider (OAuth 2.0): the providers, the Authlib client, and each mailbox's grant.

No Flask here: the views, the command line, the queue and the tests call these modules directly.
"""
