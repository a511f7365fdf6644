"""API keys, created by admins."""
