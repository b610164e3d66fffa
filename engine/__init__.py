"""The functional core: pure domain rules. No I/O, no Ray, no asyncio, no clock reads (time is passed in)."""
