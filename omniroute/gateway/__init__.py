"""The gateway: channel adapters normalise inbound contacts and publish them durably."""
