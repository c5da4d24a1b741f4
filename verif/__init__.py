"""pyuvm verification environment."""
