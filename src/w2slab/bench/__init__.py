"""``w2s bench``: a loss or method against its matched baseline on the suite of tasks and model pairs.

:mod:`.suite` declares the tasks, the ladders and the sizes; :mod:`.run` runs them as one sweep and writes the
tables; :mod:`.tables` computes them from the records (ladder, W2S table, leaderboard, claims across tasks);
:mod:`.records` keeps the per-example outcomes they are rebuilt from.
"""
