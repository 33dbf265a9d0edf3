"""The jobs wing: queue, admission, plan, worker, journal, retention, events and previews."""
