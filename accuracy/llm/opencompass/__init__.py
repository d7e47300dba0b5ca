"""OpenCompass as a subprocess: write its config, run its CLI, read its predictions."""
