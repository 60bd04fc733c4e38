"""Exceptions that steer codesign.

``CodesignError`` is a user error: the command stops with one line and exit
code 2. ``TrialFailure`` fails one candidate; the search records the reason and
goes on.
"""

from __future__ import annotations


class CodesignError(Exception):
    """A problem the user can fix (bad settings, data, profile or run directory).

    The message is one line that says what is wrong and what to do.
    """

    exit_code = 2


class TrialFailure(Exception):
    """One candidate could not be evaluated; its trial fails, the search goes on."""


class EvaluatorCrashed(TrialFailure):
    """The evaluation child process died (a crash in the converter or interpreter)."""


class DeviceUnavailable(TrialFailure):
    """The profile's device could not be reached (time-out, refused connection).

    The trial fails with this reason and is queued again; the search waits for
    the device to come back.
    """
