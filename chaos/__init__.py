"""`make chaos`: the pipeline under process kills, broker pauses and restarts, and dropped
database connections, checked for loss, duplicates, order and backward status moves."""
