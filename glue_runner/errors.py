"""The one exception type for problems the user can fix.

The CLI prints its message as a single line and exits non-zero; anything else
is a bug in glue-runner and keeps its traceback.
"""


class GlueRunnerError(Exception):
    """Bad input or configuration: the message names the problem and the fix."""


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped training at a step boundary; the message says where it was saved.

    Not a GlueRunnerError: nothing is wrong, and the CLI exits 128 + the signal's number
    (130 for Ctrl-C, 143 for SIGTERM) as shells and schedulers expect.
    """

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
