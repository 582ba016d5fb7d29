"""Leaderboard: a competition that cannot be gamed by a participant.

Participant: ``records.submit`` turns each evaluated run into a prediction file
``<dir>/submissions/<team>/<task>.<id>.npz`` (``submission``: arrays + metadata, the id a hash of
the content, created once). No score leaves the team.

Organiser: ``rstransfer ground-truth`` exports each task's hidden labels (``Task.truth``) into a
folder only the organiser reads; ``build.build`` judges every file on its own (safe reading,
owner in the team per ``organiser.load_teams``, metadata, ``Task.score`` against the hidden
labels, cost from ``accounting`` (sacct), receipt time from the append-only ledger), quarantines
the bad ones with a reason, and publishes ``board/leaderboard.{csv,md,html}`` (``render``) as one
unit. Tasks are data (``tasks.Task``) registered by the studies (``studies/<name>/board.py``).
"""
