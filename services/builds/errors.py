"""How a build step ends early: raised by the steps in ``executor``, ``git`` and ``images``."""


class BuildError(Exception):
    """A build failed for a reason the user can act on; the message is shown as is."""


class BuildStopped(Exception):
    """The build was canceled, or ran out of time, while a step was running."""
