"""The jobs wing: queue, admission, plan, worker, journal, job ids, retention, storage and the trash, the inbox's
copies, events and previews."""
