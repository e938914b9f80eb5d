"""The one exception type for problems the user can fix.

The CLI prints its message as a single line and exits non-zero; anything else
is a bug in glue-runner and keeps its traceback.
"""


class GlueRunnerError(Exception):
    """Bad input or configuration: the message names the problem and the fix."""
