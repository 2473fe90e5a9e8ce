"""What a network costs: counted memory (tally), measured peaks (measure, measure_process, memory_fit), FLOPs and speed (efficiency).

A family's own cost formula (its memory tally) lives in its module under `segkit.networks.families`.
"""
