"""The project's error types: the line between a user's mistake and a bug.

The tools (``tools/*.py`` through :func:`infopro_seg.engine.cli.run_cli`) print an
:class:`InfoProError` as one line, ``error: <message>``, and exit with its ``exit_code``; any
other exception is a bug and keeps its traceback. Raise these only with a message that names the
problem and the fix.
"""


class InfoProError(Exception):
    """An error whose message is complete on its own line (no traceback is needed)."""

    #: Exit code of a tool that stops on this error.
    exit_code = 1


class ConfigError(InfoProError, ValueError):
    """Bad user input: a config value, a command-line argument, a missing file or data set.

    A :class:`ValueError` too, so callers that catch ``ValueError`` keep working.
    """

    exit_code = 2


class TrainingStopped(InfoProError, RuntimeError):
    """Training stopped on purpose: a non-finite loss, a failed save, a preemption signal."""

    exit_code = 3


class TrainingPreempted(TrainingStopped):
    """Training stopped on a preemption signal after it saved a checkpoint of its last iteration.

    Its own exit code lets a job script tell "resume me" (requeue, restart with ``--resume``)
    from a failure that needs a person.
    """

    exit_code = 4
