"""The ground floor: settings, error classes, ids, Redis key names and structured logging.

Imports nothing from `workers` (only `schemas` and libraries); every other layer may import it.
"""
