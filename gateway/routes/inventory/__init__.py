"""The inventory's routes: holds, releases, confirms; their request/response models."""
