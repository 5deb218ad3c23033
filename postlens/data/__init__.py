"""What analyses read: prompt files and records, token batches, the sequences compared."""
