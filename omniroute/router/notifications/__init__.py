"""Keeping the customer informed: acknowledgements, who is responsible, delays, surveys."""
