"""The operations console (issue 13): server-rendered pages on their own listener, admin sign-in."""
