"""Read models built from the event log, and the runners that keep them current."""
