"""Invoices and payments (public schema). Built in the billing issue."""
