"""The exceptions the CLI turns into one line and an exit code.

GlueRunnerError is for problems the user can fix (exit 2); Interrupted for a run
stopped by a signal (exit 128 + the signal). Anything else is a bug in glue-runner
and keeps its traceback.
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
