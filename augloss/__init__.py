"""augloss."""
