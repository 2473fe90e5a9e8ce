"""Self-configuring planner: target spacing, normalisation, topology, patch and memory."""
