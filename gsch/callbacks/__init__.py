"""Telling callback URLs what became of their requests (the notifier role)."""
