"""Host side of the ESP-AT protocol: a sans-IO engine (bytes in, events out) and a client around it."""
