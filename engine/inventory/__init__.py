"""The inventory domain's core: one event's seats and GA units as a serialized state machine, and the commands
it accepts."""
