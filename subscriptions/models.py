"""Plans and subscriptions (public schema). Built in the subscriptions issue."""
