"""Training vidcolor's colorization networks (``vidcolor train``)."""
