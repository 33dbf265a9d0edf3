"""The jobs wing: queue, admission, plan, worker, journal, job ids, retention, storage and the trash, events and
previews; style training (style_training.py: a folder of recordings -> a LoRA adapter in lora_dir); live jams
(jam.py, the daemon's jams.py)."""
