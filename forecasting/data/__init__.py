"""Data layer: the column contract, loading and the synthetic demo panel."""
