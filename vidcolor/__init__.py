"""vidcolor: colorize black-and-white films and photographs."""

__version__ = "0.1.0"
