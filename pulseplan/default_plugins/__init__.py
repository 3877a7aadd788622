"""Host behaviour written as plugins, registered before any installed plugin."""
