"""Usage records and quotas (public schema). Built in the usage issue."""
