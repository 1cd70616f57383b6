"""Where jobs run: the runner backend chosen by JOB_BACKEND (``docker`` or ``swarm``).

Both backends share the database side (claims, transitions, reasons: jobs/runner.py) and the
per-host supervisor (jobs/supervisor.py), which follows the job containers on its own engine
whichever backend made them. A backend only decides how a job's container comes to exist, how
an unstarted one is stopped, how its state is read and how what is left of it is removed.
"""

from django.conf import settings

from jobs.backends.base import Backend, Observation

__all__ = ["Backend", "Observation", "get_backend"]


def get_backend(name: str | None = None) -> Backend:
    """The backend named ``name``, else JOB_BACKEND's."""
    name = name or settings.JOB_BACKEND
    if name == "swarm":
        from jobs.backends.swarm import SwarmBackend

        return SwarmBackend()
    from jobs.backends.docker import DockerBackend

    return DockerBackend()
