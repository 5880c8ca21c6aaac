"""Stream processing: where events and notifications go (sinks); the live-stream runtime comes later."""
