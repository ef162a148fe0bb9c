"""A GitLab or AlloyCI server over the Runner API v4: source, API, log sender, registration."""
