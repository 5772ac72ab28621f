"""``vidcolor serve``: a local web page over the command line's colorizer (photos, hints,
films, keyframes, jobs, eval reports). Needs the ``web`` extra (Flask)."""
