"""Connecting a provider account: the authorization-code flow with state and PKCE."""
