"""Leaderboard: teams' evaluated runs become immutable submissions, ranked on static boards.

``records.submit`` (one team, one task) turns each evaluated run of the team's config into
``<dir>/submissions/<team>/<task>/<id>.json``; the id is a hash of the content, so a rerun
with unchanged results writes nothing, and a submission is never overwritten or deleted.
``render.build`` reads every team's submissions under ``<dir>`` and writes
``leaderboard.{csv,md,html}``: one board per task (and test set), one row per team (its best
submission), and every submission below it as the history. The boards depend on the
submissions only (no build time), so an unchanged input rebuilds byte-identical files.

Tasks are data (``tasks.Task``), registered by the studies (``Study.leaderboard``, e.g.
``studies/hsi/board.py``): how to find and read a team's runs, the metric ranked by, its
range and its label. A submission is checked on ``submit`` and again on every ``build``;
each rejection is one line (``tasks.SubmissionError``) naming the file and the key.

Modules: ``tasks`` (Task, the task table, the workflow's hooks, the shared checks),
``records`` (validation, ids, submit, load), ``render`` (the csv/md/html boards).
"""
