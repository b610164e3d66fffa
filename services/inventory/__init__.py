"""The inventory's use cases: commands to an event's inventory, and the inventory's group commit."""
