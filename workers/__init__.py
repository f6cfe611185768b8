"""The pipeline: broker, thin actors, mailer, sweeper."""
