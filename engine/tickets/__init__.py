"""The tickets domain's core: the signed QR payload, its offline verifier, key states and the sealing of private
keys at rest. Pure: keys, nonces and seeds are drawn by the shell and handed in; nothing here reads a clock, a
file or the network (``cryptography`` and ``segno`` compute only)."""
