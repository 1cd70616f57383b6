"""What a long-running process of Oneoff does once it has loaded its code."""

import gc


def freeze_startup_objects() -> None:
    """Move everything the process made to start up (Django, Celery or the web server, the
    Docker SDK, the URLconf and its views: 100,000 to 150,000 objects) out of the garbage
    collector's reach, for good. A full collection walks every tracked object while holding the
    GIL, which stops every thread of the process: with that heap it took 0.1 to 0.2 s, over 1 s
    on a loaded machine. In the worker that was long enough for Docker to rotate a busy job's
    small log (16 MB in 4 pieces) past the follower before it looked again
    (``jobs.logs.files``); in a web process it stalled every request in flight. What the
    process makes later is collected as before."""
    gc.collect()
    gc.freeze()
