"""Hospital batch runs: case discovery, robust runner, report.json, statistics, QC previews, sharding."""
