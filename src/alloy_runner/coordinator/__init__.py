"""Job sources: where a runner takes its jobs from and reports them back to."""
