"""Drivers: one module (or package) per job system, behind the Protocols of :mod:`.base`."""
