"""Builds: where a service's artifacts (immutable Docker image ids) come from.

A build's life:

- ``queue.request_build`` queues it and, once the transaction commits, sends the ``run_build``
  task.
- ``queue.run_build`` claims the **oldest** queued build of the workspace whose service has no
  build ``building``, with a compare-and-set update made while the workspace row is locked, and
  only while fewer than ``BUILD_CONCURRENCY_PER_WORKSPACE`` of the workspace's builds are
  ``building``. So two builds of one service never interleave (*a newer build waits* for the
  running one), one workspace never runs more than its share at once, and the runner that
  finishes a build goes on with the workspace's next queued one (a build held back by a limit
  needs no task of its own waiting for it). A task delivered twice, or one for a build that
  another runner will start, does nothing. Build tasks go to the ``builds`` Celery queue, served
  by worker threads of their own (``config/celery.py``), so a build never delays a job's start.
- ``executor.BuildRun`` runs a claimed build. An image build takes what ``services.image_refs``
  allows: a base image, one of the workspace's own builds (by its recorded id), or a registry
  image, pulled every time within ``BUILD_PULL_TIMEOUT`` and taken by the digest it reported. A
  repository build clones the repository with the git CLI (``git``) and builds the service's
  Dockerfile in the isolated builder (``builder``: buildah with the workspace's own image store),
  streaming output into ``BuildLogLine`` while it runs, then copies the image to the engine.
  Either way the image is tagged ``oneoff/<service-id>:<build-id>`` and the build records the
  image **id**, so a later retag of the source never changes what a job runs.
- ``queue.cancel_build`` cancels a queued build at once and asks a running one to stop; the
  runner notices within half a second, kills ``git``, the pull or the builder (and every process
  of the build's cgroup), and ends it ``canceled``.
- ``queue.sweep_builds`` (beat, every minute) fails builds whose worker died and re-sends queued
  builds whose message may be lost; ``queue.cleanup_images`` (beat) removes old builds' images.

Failed and canceled builds never carry an image, so ``Service.latest_successful_build`` (what
new jobs run) never moves to them.

Modules, each importing only those before it: ``errors`` (how a step ends early), ``git`` and
``images`` (the steps), ``executor`` (one build, run to its end), ``queue`` (which build runs
when, and the periodic work).
"""
