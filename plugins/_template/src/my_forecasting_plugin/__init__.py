"""TODO: one line on your plug-in."""
