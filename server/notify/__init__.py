"""The notify sidecar (SPEC §4): aiohttp in front of NotificationService, database work off the loop."""
