"""Data for genvec: batching (`collate`), and later query readers and response generation."""
