"""The access domain's stores: orgs, users, memberships, invitations, sessions and API keys."""
