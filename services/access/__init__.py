"""The access domain's use cases: API keys, members and invitations, sessions."""
