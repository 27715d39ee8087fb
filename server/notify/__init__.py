"""The notify sidecar: aiohttp in front of NotificationService, database work off the loop."""
