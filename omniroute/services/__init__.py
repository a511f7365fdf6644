"""Process entry points: settings + transport + stages wired into runnable services."""
