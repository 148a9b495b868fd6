"""File input/output: numpy in, numpy out; no torch here."""
