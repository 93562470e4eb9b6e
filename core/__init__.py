"""Shared kernel: errors, domain events, audit, money and logging. Imports no app."""
