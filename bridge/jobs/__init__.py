"""The jobs wing: queue, admission, plan, worker, journal, job ids, retention, storage and the trash, events and
previews; live jams (jam.py, the daemon's jams.py)."""
