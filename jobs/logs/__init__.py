"""Job logs: read a container's log from Docker, clean it, store it in batches, read it back.

One module a concern, in the order a line goes through them:

- ``engine``: the Docker transport (the logs endpoint's raw stream, or the json-file's path); the
  only module that uses docker-py's private internals, for speed.
- ``files``: the json-file read across Docker's rotation (every piece held open once seen).
- ``parse``: Docker's two wire formats (frames, json-file lines) into ``(timestamp_ns, stream,
  payload)``; ``StoredLine``, a line as stored.
- ``clean``: text safe to store (UTF-8 kept whole, no NUL) and the truncation marker.
- ``mask``: the job's env values replaced by ``****`` before anything is stored (``LogMasker``,
  which holds the pieces of a long line until it is whole).
- ``store``: ``LogWriter``, which stores lines by COPY with the job's resume cursor, and
  ``lines_stored``, the ingest hook (a signal sent after each committed batch).
- ``follow``: ``LogFollower``, the threads that follow a container into the database and resume
  without gap or duplicate.
- ``marks``: a time window as a range of seqs (``JobLogMark``, about one a thousand lines, in
  place of an index on every line's time).
- ``read``: Render's ``GET /v1/logs`` pages (``query_logs``) over job and build lines, the
  values of a label (``label_values``), and a whole log for downloads.
- ``search``: Render's wildcards and regular expressions in log filters, bounded in cost.
- ``retention``: purging lines older than the workspace's retention period.
"""
