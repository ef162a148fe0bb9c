"""The runner's `gitlab-runner-helper`: archive and extract artifacts and caches."""
