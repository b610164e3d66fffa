"""The access domain's routes: API keys, members, sessions and invitations; their models."""
