"""The one base class for problems the user can fix; the CLI prints these without a traceback."""


class UserError(ValueError):
    """Bad input, a missing file, an unusable model: the message names the problem and the fix."""
