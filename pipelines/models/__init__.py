"""Model configs shipped with clipline (open_clip JSON configs) and the temporal heads."""
