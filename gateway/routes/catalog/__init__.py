"""The catalog's routes: events, their seat ids, availability and live feed; their request/response models."""
