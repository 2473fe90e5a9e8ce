"""Building blocks the families share: conv/norm layers (layers), reversible coupling (reversible), weight init (init)."""
