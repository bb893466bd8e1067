"""The one exception type a user sees.

Library code raises :class:`HearmaskError` for bad input (files, audiograms, configs,
checkpoints, serial bytes). The message says what was wrong, with the value, and what
is accepted. The CLI prints it as one line on stderr and exits non-zero.
"""


class HearmaskError(ValueError):
    """Bad input a user can act on. Subclasses ValueError so callers may catch either."""
