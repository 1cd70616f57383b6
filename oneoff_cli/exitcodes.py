"""The exit codes of ``oneoff`` (README: "Command-line client", exit codes).

``jobs run --wait`` exits with the job's own exit code; the client's own failures use the
sysexits(3) numbers, which jobs rarely use, so a script can tell the two apart.
"""

OK = 0
JOB_FAILED = 1  # a job that failed without an exit code of its own, or was canceled
USAGE = 64  # EX_USAGE: bad flags or arguments
API_REFUSED = 65  # EX_DATAERR: the API refused the request (400, 409, 422, 429)
NOT_FOUND = 66  # EX_NOINPUT: no such service or job (404)
NETWORK = 69  # EX_UNAVAILABLE: the API could not be reached, or answered 502/503/504
SERVER = 70  # EX_SOFTWARE: the API failed (500)
AUTH = 77  # EX_NOPERM: missing or refused API key (401, 403)
CONFIG = 78  # EX_CONFIG: no API URL or key, or an unsafe config file
TIMED_OUT = 124  # the job ran past its timeout (like timeout(1))
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
TERMINATED = 143  # SIGTERM while waiting (128 + SIGTERM); the job was canceled


class CliError(Exception):
    """A one-line error for the user, and the exit code it means."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.message = message
        self.code = code
