"""HTTP plumbing shared by every route: request ids, JSON errors, API docs."""
