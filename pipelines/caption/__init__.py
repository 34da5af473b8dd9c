"""Captioners: models that write a caption for an image (CoCa, ClipCap), behind one interface."""
