"""Weight shifts: per-tensor statistics of the update, streamed from the checkpoints."""
