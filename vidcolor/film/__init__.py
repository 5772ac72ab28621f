"""Films: read, colour in a streaming pipeline, write; in one pass, in resumable segments, or on Ray.

Layered bottom to top, one idea per module:

- :mod:`~vidcolor.film.source`: opening and reading a film (frames and other streams' packets);
- :mod:`~vidcolor.film.sink`: writing the final film (encoder settings, other streams' fates,
  the completeness check), and the :class:`~vidcolor.film.sink.FrameSink` protocol;
- :mod:`~vidcolor.film.frames`: lightness + ab -> output pixels (films, photos and eval), and
  :mod:`~vidcolor.film.frames_cpu`, its fused CPU kernel;
- :mod:`~vidcolor.film.pipeline`: the read, colour and write threads;
- :mod:`~vidcolor.film.segments`: segments, their planning, encoding and writer;
- :mod:`~vidcolor.film.journal`: the work folder, its journal, segment files, fingerprints;
- :mod:`~vidcolor.film.assembly`: the final film from segment files;
- :mod:`~vidcolor.film.job`, :mod:`~vidcolor.film.summary`: what a run is asked, and what it did;
- :mod:`~vidcolor.film.plan`: one pass or segments, and how each finishes;
- :mod:`~vidcolor.film.engine`: :func:`~vidcolor.film.engine.colour_span` (the one copy of the
  work) and the local engine; :mod:`~vidcolor.film.ray`: the same spans on Ray workers.
"""
