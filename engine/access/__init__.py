"""The access domain's core: roles, permissions, key and membership rules, passwords."""
