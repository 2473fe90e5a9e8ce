"""The network families: one module each with its builder, planner defaults, memory tally and `FAMILY` record.

Registered in `segkit.networks.registry`; nothing here is imported by the package itself.
"""
