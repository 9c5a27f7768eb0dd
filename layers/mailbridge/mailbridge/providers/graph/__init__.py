"""Microsoft Graph: the mail adapter (client.py) and change-notification subscriptions (subscriptions.py)."""
